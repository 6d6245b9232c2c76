"""Pure NumPy reference implementations (the executable specification)."""
