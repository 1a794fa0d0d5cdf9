"""The demo CPOMS school app (:5001): one OIDC client per school, at /<school slug>/.

Run: python -m clients.school_app [--port 5001]"""

from .rp import create_rp_app, main

KIND = "school"
TITLE = "CPOMS (demo school app)"


def create_app(**options):
    return create_rp_app(KIND, TITLE, **options)


if __name__ == "__main__":
    main(KIND, TITLE, default_port=5001)
