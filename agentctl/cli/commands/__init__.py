"""One module per command; each parses its flags, calls one function and renders the outcome."""
