"""Tools for testing the core: `townlet_env.testing.reference` is the plain-Python reference of
one tick that the tensor core is checked against."""
