"""The local demo and the development services (the development IAM, a hub on 127.0.0.1), apart
from the product: tests and benchmarks start them through here."""
