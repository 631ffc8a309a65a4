"""An Open311 GeoReport v2 facade (services.json, requests.json, requests/<id>.json) over the cases, for
city platforms and apps that speak the standard. Same bearer tokens, same scope, same case service."""
