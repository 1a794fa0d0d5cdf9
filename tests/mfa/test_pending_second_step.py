"""The pending second step (password right, code not yet given) dies with the person's access."""

from idp.admin import service
from idp.extensions import db
from idp.models import Membership
from tests.conftest import csrf_token_from

from .conftest import enrol
from .conftest import sign_in_of


def _deactivate(account, tenant):
    membership = db.session.query(Membership).filter_by(account_id=account.id, tenant_id=tenant.id).one()
    service.deactivate_member(tenant, membership.id, actor=None)
    db.session.commit()


def test_a_member_deactivated_while_giving_their_code_is_not_signed_in(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    token = csrf_token_from(browser.get("/t/beech/login/verify").get_data(as_text=True))
    _deactivate(world.beech_identity, world.beech)
    response = browser.client.post("/t/beech/login/verify", data={"csrf_token": token, "code": enrolment.code()})
    assert response.status_code == 302 and response.headers["Location"].startswith("/t/beech/login")
    assert sign_in_of(browser.client) is None


def test_a_shared_sso_member_deactivated_at_this_school_cannot_finish_signing_in_here(browser, world, frozen_clock):
    # Their sign-ins elsewhere are kept, so only the membership check stops this.
    enrolment = enrol(world.sso_user)
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    token = csrf_token_from(browser.get("/t/oakwood/login/verify").get_data(as_text=True))
    _deactivate(world.sso_user, world.oakwood)
    response = browser.client.post("/t/oakwood/login/verify", data={"csrf_token": token, "code": enrolment.code()})
    assert response.status_code == 302 and response.headers["Location"].startswith("/t/oakwood/login")
    assert sign_in_of(browser.client) is None
