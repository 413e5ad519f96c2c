"""The web console of `seatledger serve` for finance and support (docs/console.md): month,
company-month and account pages rendered on the server over the API's read model, charts drawn to
SVG, downloads, and dispute corrections for admins. Mounted on the API's app by `site.install`.
"""
