import a_package_that_is_not_installed  # noqa: F401  (the import error this fixture is about)
