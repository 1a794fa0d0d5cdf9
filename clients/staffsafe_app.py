"""The demo CPOMS StaffSafe app (:5002): the StaffSafe tenant's OIDC client.

Run: python -m clients.staffsafe_app [--port 5002]"""

from .rp import create_rp_app, main

KIND = "staffsafe"
TITLE = "CPOMS StaffSafe (demo app)"


def create_app(**options):
    return create_rp_app(KIND, TITLE, **options)


if __name__ == "__main__":
    main(KIND, TITLE, default_port=5002)
