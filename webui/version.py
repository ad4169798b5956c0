"""The studio's version, written into infotext and shown by the API."""

VERSION = "0.1.0"
