"""authorize's one-statement path asks the database the same question as sign_in_requirement:
for every policy, role, enrolment, sign-in and acr request, both must agree on "nothing more"."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import exists, select

from idp.accounts import mfa, sessions
from idp.extensions import db
from idp.models import Account, BrowserSession, Membership, Tenant

from .conftest import enrol

CASES = list(itertools.product(
    ("off", "admins", "everyone"),  # tenant policy
    ("staff", "admin"),             # role
    (False, True),                  # enrolled
    (("pwd",), ("pwd", "otp"), ("pwd", "hwk")),  # the sign-in's amr
    (None, mfa.ACR_2FA, mfa.ACR_PHISHING_RESISTANT),  # the level acr_values asks for
    (False, True),                  # the school requires a key of its admins
))


@pytest.mark.parametrize("policy, role, enrolled, amr, acr_2fa, key_policy", CASES)
def test_sql_criteria_agree_with_sign_in_requirement(world, frozen_clock, policy, role, enrolled, amr, acr_2fa,
                                                     key_policy):
    account, tenant = world.oakwood_admin, world.oakwood
    membership = account.membership_in(tenant.id)
    membership.role = role
    tenant.require_2fa = policy
    tenant.admins_phishing_resistant = key_policy
    db.session.commit()
    if enrolled:
        enrol(account)
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    membership = account.membership_in(tenant.id)

    row, _ = sessions.start(account, tenant=tenant, provider="identity", amr=list(amr), acr=mfa.acr_for(amr),
                            second_factor=mfa.is_second_factor(amr), device="", ip=None)
    db.session.flush()

    nothing_more = mfa.sign_in_requirement(account, membership, amr, acr_2fa) is None
    sql_says = db.session.scalar(select(exists().where(
        BrowserSession.id == row.id, Account.id == BrowserSession.account_id, Membership.account_id == Account.id,
        Membership.tenant_id == tenant.id, Tenant.id == Membership.tenant_id,
        *mfa.nothing_more_needed_criteria(acr_2fa),
    )))
    assert sql_says == nothing_more
