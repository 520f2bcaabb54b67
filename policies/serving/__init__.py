"""Serving a policy over the network: the wire format, the ``vla-serve`` server and a torch-free client."""
