"""The web side: the status server, what it shows (view), the page, metrics."""
