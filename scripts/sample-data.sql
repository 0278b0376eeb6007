-- Sample database in the spirit of the integration guide: users, customers,
-- products, orders with items, an event table for the write-mode example, a
-- view, functions, and a schema `app` holding a table operators usually block.
-- Deterministic (no random()), so tests can assert exact figures.

BEGIN;

CREATE TABLE users (
    id          serial PRIMARY KEY,
    name        varchar(100) NOT NULL,
    email       varchar(255) NOT NULL UNIQUE,
    created_at  timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
COMMENT ON TABLE users IS 'People who can sign in';

CREATE TABLE customers (
    id              serial PRIMARY KEY,
    company_name    varchar(255) NOT NULL,
    contact_person  varchar(100),
    email           varchar(100),
    phone           varchar(20),
    address         jsonb,
    created_at      timestamp DEFAULT CURRENT_TIMESTAMP
);
COMMENT ON TABLE customers IS 'Companies that place orders';

CREATE TABLE products (
    id          serial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    in_stock    boolean NOT NULL DEFAULT true
);

CREATE TABLE orders (
    id            serial PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users (id),
    customer_id   integer REFERENCES customers (id),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    total_amount  numeric(12, 2) NOT NULL DEFAULT 0,
    created_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);

CREATE TABLE order_items (
    order_id    integer NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  integer NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE user_events (
    id          bigserial PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id),
    event_type  text NOT NULL,
    event_data  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO users (name, email, created_at)
SELECT 'User ' || g, 'user' || g || '@example.com', timestamp '2025-01-01' + (g || ' hours')::interval
FROM generate_series(1, 50) AS g;

INSERT INTO customers (company_name, contact_person, email, phone, address, created_at)
SELECT 'Company ' || g, 'Contact ' || g, 'buyer' || g || '@company' || g || '.example',
       '+1-555-01' || lpad(g::text, 2, '0'),
       jsonb_build_object('city', (ARRAY['Lisbon', 'Oslo', 'Austin', 'Osaka'])[1 + g % 4], 'zip', lpad(g::text, 5, '0')),
       timestamp '2024-06-01' + (g || ' days')::interval
FROM generate_series(1, 20) AS g;

INSERT INTO products (sku, name, price, in_stock)
SELECT 'SKU-' || lpad(g::text, 4, '0'), 'Product ' || g, (g * 3.25)::numeric(10, 2), g % 7 <> 0
FROM generate_series(1, 30) AS g;

INSERT INTO orders (user_id, customer_id, status, created_at)
SELECT 1 + g % 50, 1 + g % 20,
       (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + g % 4],
       timestamp '2025-01-01' + (g * 7 || ' hours')::interval
FROM generate_series(1, 200) AS g;

INSERT INTO order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, p.id, 1 + (o.id + p.id) % 3, p.price
FROM orders o
JOIN products p ON p.id IN (1 + o.id % 30, 1 + (o.id * 7) % 30)
ON CONFLICT DO NOTHING;

UPDATE orders o
SET total_amount = s.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_items GROUP BY order_id) s
WHERE s.order_id = o.id;

CREATE VIEW customer_summary AS
SELECT c.id,
       c.company_name,
       c.contact_person,
       count(o.id)          AS total_orders,
       sum(o.total_amount)  AS total_spent,
       max(o.created_at)    AS last_order_date
FROM customers c
LEFT JOIN orders o ON c.id = o.customer_id
GROUP BY c.id, c.company_name, c.contact_person;
COMMENT ON VIEW customer_summary IS 'Orders and revenue per customer';

CREATE FUNCTION get_customer_analytics(customer_id_param integer)
RETURNS TABLE (
    customer_name    varchar,
    total_orders     integer,
    total_spent      numeric,
    avg_order_value  numeric,
    last_order_date  timestamp
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT c.company_name,
           count(o.id)::integer,
           coalesce(sum(o.total_amount), 0),
           coalesce(round(avg(o.total_amount), 2), 0),
           max(o.created_at)
    FROM customers c
    LEFT JOIN orders o ON c.id = o.customer_id AND o.status <> 'cancelled'
    WHERE c.id = customer_id_param
    GROUP BY c.id, c.company_name;
END;
$$;
COMMENT ON FUNCTION get_customer_analytics(integer) IS 'Order count and revenue of one customer, cancelled orders excluded';

CREATE FUNCTION daily_sales_summary()
RETURNS TABLE (day date, orders bigint, revenue numeric)
LANGUAGE sql STABLE AS $$
    SELECT created_at::date, count(*), sum(total_amount)
    FROM orders
    WHERE status <> 'cancelled'
    GROUP BY 1
    ORDER BY 1
$$;

-- A schema the sample's ALLOWED_SCHEMAS admits, with a table that
-- BLOCKED_TABLES is meant to hide.
CREATE SCHEMA app;
CREATE TABLE app.settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO app.settings VALUES ('currency', 'EUR'), ('timezone', 'Europe/Lisbon');
CREATE TABLE app.secrets (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO app.secrets VALUES ('payment_api_key', 'sk_live_do_not_leak');

ANALYZE;

COMMIT;
