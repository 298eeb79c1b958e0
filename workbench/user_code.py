"""Code a user brings (a custom layer module, a custom Dataset): the trust a user gives a file, and importing a class from it with errors that name the file and the line."""
