"""Built-in harness plugins. Each sub-package is one method, registered through the ``harness`` entry-point group."""
