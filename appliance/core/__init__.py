"""Pure building blocks shared by every part: addresses, errors, file safety, logging."""
