"""SatVision's version, in a module of its own so that any layer can read it without importing the
package root (and ``classFactory``'s module) first. ``metadata.txt`` states the same version; a test
checks that they agree."""

__version__ = "0.1.0"
