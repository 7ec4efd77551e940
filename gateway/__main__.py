"""`python -m gateway` is the prepaidgw command line."""

from gateway.cli import main

main()
