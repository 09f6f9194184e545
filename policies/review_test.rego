# Tests of the corrections from the legal review (issue 9): the service
# window never waives marketing consent, objections cover every channel,
# double opt-in on the right channel, time zones per country, legal bases
# other than consent. Each failed against the policy before the review.
package consentledger.send_test

# ---------------------------------------------------------------------------
# 1. Service window: a marketing purpose or category always needs marketing
# consent, and a withdrawal always wins.

free_form_promo := {"request": {"purpose": "marketing", "category": "", "service_window_open": true}}

test_service_window_never_waives_marketing_purpose if {
	d := decide_consents({}, free_form_promo)
	d.reasons == ["no_consent: no opt-in for whatsapp/marketing"]
}

test_service_window_marketing_after_stop_denied if {
	withdrawn := object.union(granted_marketing, {"status": "withdrawn", "withdrawn_at": "2026-11-26T09:00:00Z", "withdrawal_index": 40})
	d := decide_consents({"whatsapp": {"marketing": withdrawn}}, free_form_promo)
	d == {"allow": false, "reasons": ["consent_withdrawn: opt-in for whatsapp/marketing was withdrawn 2026-11-26"]}
}

test_service_window_other_marketing_purpose_denied if {
	d := decide_consents({}, {"request": {"purpose": "newsletter", "category": "", "service_window_open": true}}) with data.consentledger.config.marketing_purposes as ["marketing", "newsletter"]
	denied(d, "no_consent")
}

test_service_window_reply_after_withdrawal_of_its_purpose_denied if {
	w := {"status": "withdrawn", "withdrawn_at": "2026-11-26T09:00:00Z", "withdrawal_index": 41}
	d := decide_consents({"whatsapp": {"support": w}}, reply)
	d.reasons == ["consent_withdrawn: opt-in for whatsapp/support was withdrawn 2026-11-26"]
}

test_service_window_still_allows_plain_reply if {
	d := decide_consents({"whatsapp": {"marketing": {"status": "withdrawn", "withdrawal_index": 3}}}, reply)
	allowed(d)
	has(d, "service_window")
}

# ---------------------------------------------------------------------------
# 2. An objection to direct marketing (Art. 21(3)) covers every marketing
# purpose on every channel.

objection := {"at": "2026-06-01T10:00:00Z", "index": 90}

email_grant := object.union(granted_marketing, {"confirmed_via": "email"})

test_objection_denies_marketing_on_every_channel if {
	c := {"email": {"marketing": email_grant}, "whatsapp": {"marketing": granted_marketing}}
	d := decide_consents(c, {"subject": {"objection": objection}})
	d == {"allow": false, "reasons": ["objection: the subject objected to direct marketing 2026-06-01 (GDPR Art. 21(3)); no marketing on any channel without a new opt-in"]}
	e := decide_consents(c, {"subject": {"objection": objection}, "request": {"channel": "email", "category": ""}})
	denied(e, "objection")
}

test_objection_denies_every_marketing_purpose if {
	c := {"whatsapp": {"newsletter": granted_marketing}}
	d := decide_consents(c, {"subject": {"objection": objection}, "request": {"purpose": "newsletter", "category": ""}}) with data.consentledger.config.marketing_purposes as ["marketing", "newsletter"]
	denied(d, "objection")
}

test_objection_leaves_non_marketing if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01", "grant_index": 5}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"subject": {"objection": objection}, "request": {"purpose": "order_updates", "category": "utility"}}))
}

test_objection_then_new_opt_in_allows if {
	later := object.union(granted_marketing, {"granted_at": "2026-07-01T09:00:00Z", "grant_index": 95})
	allowed(decide_consents({"whatsapp": {"marketing": later}}, {"subject": {"objection": objection}}))
	no_index := json.remove(later, ["grant_index"])
	allowed(decide_consents({"whatsapp": {"marketing": no_index}}, {"subject": {"objection": objection}}))
}

test_objection_wins_in_service_window if {
	denied(decide({"subject": {"objection": objection}, "request": {"service_window_open": true, "category": ""}}), "objection")
}

test_objection_rule_off if {
	allowed(decide({"subject": {"objection": objection}})) with data.consentledger.config.rules.objection as false
}

# ---------------------------------------------------------------------------
# 4. Double opt-in counts only when confirmed on the consent's channel.

test_double_opt_in_on_other_channel_denied if {
	d := decide_consents({"whatsapp": {"marketing": email_grant}}, {})
	d == {"allow": false, "reasons": ["double_opt_in_wrong_channel: marketing opt-in for whatsapp/marketing was confirmed via email, not on whatsapp; confirm it on whatsapp"]}
}

test_double_opt_in_without_channel_is_its_own_channel if {
	d := decide_consents({"whatsapp": {"marketing": json.remove(granted_marketing, ["confirmed_via"])}}, {})
	d == {"allow": true, "reasons": [consent_reason, doi_reason]}
}

test_double_opt_in_on_same_channel_allowed if {
	sms := {"request": {"channel": "sms", "category": ""}}
	allowed(decide_consents({"sms": {"marketing": object.union(granted_marketing, {"confirmed_via": "sms"})}}, sms))
	denied(decide_consents({"sms": {"marketing": granted_marketing}}, sms), "double_opt_in_wrong_channel")
}

# ---------------------------------------------------------------------------
# 5. A number with no time zone: its country's zone; a country of several
# zones needs one.

no_zone(country, now) := {"now": now, "request": {"subject_timezone": ""}, "subject": {"country": country}}

test_country_default_zone if {
	# 20:30 UTC is 21:30 in Helsinki: outside 22:00; 21:30 UTC is 23:30 there.
	allowed(decide(no_zone("FI", "2026-11-26T19:30:00Z")))
	d := decide(no_zone("FI", "2026-11-26T20:30:00Z"))
	d.reasons == ["quiet_hours: 22:30 in Europe/Helsinki is inside the marketing quiet hours 22:00-08:00 by default"]

	# 21:30 UTC in London is 21:30: the company zone (Berlin) would say 22:30.
	allowed(decide(no_zone("GB", "2026-11-26T21:30:00Z")))
}

test_multi_zone_country_without_zone_denied if {
	# 08:00 UTC is 03:00 in New York: the company zone would allow it.
	d := decide(no_zone("US", "2026-11-26T08:00:00Z"))
	d == {"allow": false, "reasons": ["timezone_required: US spans several time zones and the request gives no subject_timezone; marketing quiet hours need the subject's zone"]}
	every c in ["CA", "AU", "BR", "MX", "RU"] {
		denied(decide(no_zone(c, "2026-11-26T12:00:00Z")), "timezone_required")
	}
}

test_multi_zone_country_with_zone_allowed if {
	allowed(decide({"now": "2026-11-26T17:00:00Z", "request": {"subject_timezone": "America/Chicago"}, "subject": {"country": "US"}}))
}

test_multi_zone_only_for_marketing if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, object.union(no_zone("US", "2026-11-26T08:00:00Z"), {"request": {"purpose": "order_updates", "category": "utility"}})))
}

test_no_country_uses_company_zone if {
	denied(decide(no_zone("", "2026-11-26T21:30:00Z")), "quiet_hours")
	allowed(decide(no_zone("", "2026-11-26T20:30:00Z")))
}

# ---------------------------------------------------------------------------
# 6. Legal bases other than consent.

otp := {"request": {"channel": "sms", "purpose": "authentication", "category": "authentication", "legal_basis": "contract"}}

breach_notice := {"request": {"purpose": "breach_notice", "category": "", "legal_basis": "legal_obligation"}, "breaches": [breach_wa]}

test_one_time_code_under_contract_allowed if {
	d := decide_consents({}, otp)
	d == {"allow": true, "reasons": ["legal_basis: sms/authentication relies on contract (GDPR Art. 6(1)(b)), not on consent"]}

	# At night too: quiet hours are for marketing.
	allowed(decide_consents({}, object.union(otp, {"now": "2026-11-26T23:30:00Z"})))
}

test_one_time_code_under_consent_needs_consent if {
	denied(decide_consents({}, {"request": {"channel": "sms", "purpose": "authentication", "category": "authentication"}}), "no_consent")
	denied(decide_consents({}, {"request": {"channel": "sms", "purpose": "authentication", "category": "authentication", "legal_basis": "consent"}}), "no_consent")
}

test_breach_notice_bypasses_freeze if {
	d := decide_consents({}, breach_notice)
	d == {"allow": true, "reasons": ["legal_basis: whatsapp/breach_notice relies on legal_obligation (GDPR Art. 6(1)(c)), not on consent"]}
}

test_legal_basis_never_allows_marketing if {
	d := decide_consents({}, {"request": {"legal_basis": "contract"}})
	d.reasons == [
		"legal_basis_not_applicable: purpose marketing cannot rely on contract; data.json legal_bases lists the purposes each basis covers",
		"legal_basis_not_for_marketing: marketing cannot rely on contract; it needs consent (UWG §7(2))",
	]

	# A marketing template under an authentication purpose is marketing too.
	denied(decide_consents({}, {"request": {"purpose": "authentication", "category": "marketing", "legal_basis": "contract"}}), "legal_basis_not_for_marketing")
	denied(decide_consents({}, {"request": {"purpose": "marketing", "legal_basis": "legal_obligation"}, "breaches": [breach_wa]}), "breach_freeze")
}

test_legal_basis_covers_only_its_purposes if {
	denied(decide_consents({}, {"request": {"purpose": "order_updates", "category": "", "legal_basis": "contract"}}), "legal_basis_not_applicable")
	denied(decide_consents({}, {"request": {"purpose": "authentication", "category": "", "legal_basis": "legal_obligation"}}), "legal_basis_not_applicable")
	denied(decide_consents({}, {"request": {"purpose": "authentication", "category": "", "legal_basis": "vital_interest"}}), "legal_basis_not_applicable")
}

test_legal_basis_rule_off_needs_consent if {
	denied(decide_consents({}, otp), "no_consent") with data.consentledger.config.rules.legal_basis as false
}

test_legal_basis_from_data if {
	order := {"request": {"purpose": "order_updates", "category": "utility", "legal_basis": "contract"}}
	allowed(decide_consents({}, order)) with data.consentledger.config.legal_bases.contract as ["authentication", "order_updates"]
}
