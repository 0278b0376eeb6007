"""HTTP only: content types, Accept, Origin, limits and status codes. Blueprints per surface."""
