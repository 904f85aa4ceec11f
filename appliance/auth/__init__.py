"""Authentication: password hashing now; SASL and the one login guard come with submission."""
