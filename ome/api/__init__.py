"""The HTTP face of the OME: the only package that imports aiohttp (besides the dev executioner)."""
