"""`python -c 'from tradewind.web.openapi import openapi_document'` for the frontend's client generator."""

from tradewind.web.app import openapi_document

__all__ = ["openapi_document"]
