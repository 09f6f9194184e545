# Tests of the send decision. Run with `go tool opa test policies/` or
# `consentledger policy test policies/`. Each rule is tested both ways:
# a send it denies and a send it lets through.
package consentledger.send_test

import data.consentledger.send

# ---------------------------------------------------------------------------
# Fixtures. base is a marketing WhatsApp message to a German subject on a
# Thursday at 11:00 Berlin time, with a double-opt-in marketing consent.

granted_marketing := {
	"status": "granted",
	"granted_at": "2026-01-05T09:00:00Z",
	"method": "checkout",
	"notice_version": "2026-01",
	"double_opt_in": true,
	"confirmed_at": "2026-01-05T09:10:00Z",
	"confirmed_via": "whatsapp",
	"grant_index": 12,
	"confirmation_index": 13,
}

base := {
	"now": "2026-11-26T10:00:00Z",
	"request": {
		"channel": "whatsapp",
		"purpose": "marketing",
		"category": "marketing",
		"provider": {"name": "eu-bsp", "region": "EU"},
		"subject_timezone": "Europe/Berlin",
		"service_window_open": false,
		"message_ref": "order-123",
	},
	"subject": {
		"known": true,
		"country": "DE",
		"consents": {"whatsapp": {"marketing": granted_marketing}},
	},
	"breaches": [],
}

# with_consents replaces the subject's consents.
with_consents(consents) := json.patch(base, [{"op": "replace", "path": "/subject/consents", "value": consents}])

# decide evaluates the decision for base deep-merged with patch.
decide(patch) := d if {
	d := send.decision with input as object.union(base, patch)
}

decide_consents(consents, patch) := d if {
	d := send.decision with input as object.union(with_consents(consents), patch)
}

# has(d, code) holds when one of d's reasons carries the code.
has(d, code) if {
	some r in d.reasons
	startswith(r, concat("", [code, ": "]))
}

allowed(d) if {
	d.allow == true
	count(d.reasons) > 0
	d.reasons == sort(d.reasons)
}

denied(d, code) if {
	d.allow == false
	has(d, code)
	d.reasons == sort(d.reasons)
}

consent_reason := "consent: opt-in for whatsapp/marketing granted 2026-01-05 by checkout (notice 2026-01)"

doi_reason := "double_opt_in: marketing opt-in for whatsapp/marketing was confirmed by double opt-in"

# ---------------------------------------------------------------------------
# Consent required and granted.

test_allow_with_consent if {
	decide({}) == {"allow": true, "reasons": [consent_reason, doi_reason]}
}

test_deny_without_consent if {
	decide_consents({}, {}) == {"allow": false, "reasons": ["no_consent: no opt-in for whatsapp/marketing"]}
}

test_deny_consent_for_other_channel_only if {
	d := decide_consents({"sms": {"marketing": granted_marketing}}, {})
	d.reasons == ["no_consent: no opt-in for whatsapp/marketing"]
}

test_deny_consent_for_other_purpose_only if {
	d := decide_consents({"whatsapp": {"newsletter": granted_marketing}}, {})
	denied(d, "no_consent")
}

test_deny_withdrawn if {
	withdrawn := object.union(granted_marketing, {"status": "withdrawn", "withdrawn_at": "2026-03-01T12:00:00Z", "withdrawal_index": 40})
	d := decide_consents({"whatsapp": {"marketing": withdrawn}}, {})
	d == {"allow": false, "reasons": ["consent_withdrawn: opt-in for whatsapp/marketing was withdrawn 2026-03-01"]}
}

test_deny_withdrawn_without_time if {
	withdrawn := object.union(granted_marketing, {"status": "withdrawn"})
	d := decide_consents({"whatsapp": {"marketing": withdrawn}}, {})
	d.reasons == ["consent_withdrawn: opt-in for whatsapp/marketing was withdrawn (date unknown)"]
}

test_deny_erased if {
	d := decide_consents({"whatsapp": {"marketing": {"status": "erased"}}}, {})
	d == {"allow": false, "reasons": ["subject_erased: the subject was erased; no opt-in for whatsapp/marketing can be relied on"]}
}

test_deny_unknown_status if {
	d := decide_consents({"whatsapp": {"marketing": {"status": "pending"}}}, {})
	d.reasons == ["no_consent: opt-in for whatsapp/marketing has status \"pending\""]
}

test_deny_unknown_subject if {
	d := decide_consents({}, {"subject": {"known": false, "country": ""}})
	denied(d, "no_consent")
}

test_allow_non_marketing_with_consent if {
	order := {"status": "granted", "granted_at": "2020-01-05T09:00:00Z", "method": "web_form", "notice_version": "2019-12"}
	d := decide_consents({"sms": {"order_updates": order}}, {"request": {"channel": "sms", "purpose": "order_updates", "category": ""}})
	d == {"allow": true, "reasons": ["consent: opt-in for sms/order_updates granted 2020-01-05 by web_form (notice 2019-12)"]}
}

test_consent_rule_off_allows_without_consent if {
	d := decide_consents({}, {}) with data.consentledger.config.rules.consent as false
	d == {"allow": true, "reasons": ["no_restriction: no enabled rule restricts this send"]}
}

# ---------------------------------------------------------------------------
# Refresh: marketing consent lapses after 730 days without use.

old_grant := object.union(granted_marketing, {"granted_at": "2024-06-01T09:00:00Z", "confirmed_at": "2024-06-01T09:10:00Z"})

test_deny_stale_marketing_consent if {
	d := decide_consents({"whatsapp": {"marketing": old_grant}}, {})
	d.reasons == ["consent_stale: marketing opt-in for whatsapp/marketing unused for more than 730 days; ask for consent again"]
	d.allow == false
}

test_allow_old_consent_used_recently if {
	used := object.union(old_grant, {"last_allowed_send_at": "2026-02-01T10:00:00Z"})
	allowed(decide_consents({"whatsapp": {"marketing": used}}, {}))
}

test_deny_old_consent_last_used_long_ago if {
	used := object.union(old_grant, {"last_allowed_send_at": "2024-11-01T10:00:00Z"})
	denied(decide_consents({"whatsapp": {"marketing": used}}, {}), "consent_stale")
}

test_refresh_boundary if {
	# 730 days after the grant exactly: still fresh; one second later: stale.
	grant := object.union(granted_marketing, {"granted_at": "2024-11-26T10:00:00Z"})
	allowed(decide_consents({"whatsapp": {"marketing": grant}}, {}))
	denied(decide_consents({"whatsapp": {"marketing": grant}}, {"now": "2026-11-26T10:00:01Z"}), "consent_stale")
}

test_refresh_not_for_non_marketing if {
	order := {"status": "granted", "granted_at": "2020-01-05T09:00:00Z", "method": "web_form", "notice_version": "2019-12"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"request": {"purpose": "order_updates", "category": "utility"}}))
}

test_refresh_threshold_from_data if {
	d := decide({}) with data.consentledger.config.consent_refresh_after_days as 300
	d.reasons == ["consent_stale: marketing opt-in for whatsapp/marketing unused for more than 300 days; ask for consent again"]
}

test_refresh_rule_off if {
	allowed(decide_consents({"whatsapp": {"marketing": old_grant}}, {})) with data.consentledger.config.rules.consent_refresh as false
}

# ---------------------------------------------------------------------------
# Privacy notice: a minimum version for marketing consent.

test_notice_outdated_denied if {
	d := decide({}) with data.consentledger.config.notice_min_version as "2026-11"
	d.reasons == ["notice_outdated: marketing opt-in for whatsapp/marketing was given under privacy notice 2026-01, older than the required 2026-11; ask for consent again with the current notice"]
}

test_notice_current_allowed if {
	g := object.union(granted_marketing, {"notice_version": "2026-11", "notice_language": "de"})
	allowed(decide_consents({"whatsapp": {"marketing": g}}, {})) with data.consentledger.config.notice_min_version as "2026-11"
}

test_notice_without_version_denied if {
	g := object.remove(granted_marketing, ["notice_version"])
	denied(decide_consents({"whatsapp": {"marketing": g}}, {}), "notice_outdated") with data.consentledger.config.notice_min_version as "2026-11"
}

test_notice_no_minimum_by_default if {
	allowed(decide({}))
}

test_notice_rule_off if {
	allowed(decide({})) with data.consentledger.config.notice_min_version as "2026-11"
		with data.consentledger.config.rules.notice_version as false
}

test_notice_not_for_non_marketing if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "web_form", "notice_version": "2019-12"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"request": {"purpose": "order_updates", "category": "utility"}})) with data.consentledger.config.notice_min_version as "2026-11"
}

# ---------------------------------------------------------------------------
# Double opt-in for marketing.

single := json.remove(object.union(granted_marketing, {"double_opt_in": false}), ["confirmed_at", "confirmation_index"])

test_deny_marketing_without_double_opt_in if {
	d := decide_consents({"whatsapp": {"marketing": single}}, {})
	d == {"allow": false, "reasons": ["double_opt_in_required: marketing opt-in for whatsapp/marketing was not confirmed by double opt-in"]}
}

test_deny_marketing_double_opt_in_absent if {
	d := decide_consents({"whatsapp": {"marketing": json.remove(granted_marketing, ["double_opt_in"])}}, {})
	denied(d, "double_opt_in_required")
}

test_allow_non_marketing_without_double_opt_in if {
	d := decide_consents({"whatsapp": {"order_updates": single}}, {"request": {"purpose": "order_updates", "category": "utility"}})
	d == {"allow": true, "reasons": ["consent: opt-in for whatsapp/order_updates granted 2026-01-05 by checkout (notice 2026-01)"]}
}

test_double_opt_in_rule_off if {
	d := decide_consents({"whatsapp": {"marketing": single}}, {}) with data.consentledger.config.rules.double_opt_in as false
	d == {"allow": true, "reasons": [consent_reason]}
}

test_marketing_purposes_from_data if {
	news := {"whatsapp": {"newsletter": single}}
	patch := {"request": {"purpose": "newsletter", "category": "utility"}}
	allowed(decide_consents(news, patch))
	d := decide_consents(news, patch) with data.consentledger.config.marketing_purposes as ["marketing", "newsletter"]
	denied(d, "double_opt_in_required")
}

# ---------------------------------------------------------------------------
# WhatsApp only through an EU/EEA provider.

test_deny_whatsapp_non_eu_provider if {
	d := decide({"request": {"provider": {"name": "us-bsp", "region": "US"}}})
	d == {"allow": false, "reasons": ["provider_region_not_allowed: WhatsApp provider us-bsp is in region \"US\", allowed are EU, EEA"]}
}

test_deny_whatsapp_provider_region_missing if {
	d := send.decision with input as json.remove(base, ["request/provider"])
	denied(d, "provider_region_not_allowed")
}

test_allow_whatsapp_eea_provider_any_case if {
	allowed(decide({"request": {"provider": {"name": "no-bsp", "region": "eea"}}}))
}

test_deny_non_eu_provider_for_non_marketing_whatsapp if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	d := decide_consents({"whatsapp": {"order_updates": order}}, {"request": {"purpose": "order_updates", "category": "utility", "provider": {"name": "us-bsp", "region": "US"}}})
	d.reasons == ["provider_region_not_allowed: WhatsApp provider us-bsp is in region \"US\", allowed are EU, EEA"]
}

test_allow_non_eu_provider_on_sms if {
	d := decide_consents({"sms": {"marketing": object.union(granted_marketing, {"confirmed_via": "sms"})}}, {"request": {"channel": "sms", "category": "", "provider": {"name": "us-sms", "region": "US"}}})
	allowed(d)
}

test_provider_regions_from_data if {
	allowed(decide({"request": {"provider": {"name": "ch-bsp", "region": "CH"}}})) with data.consentledger.config.allowed_provider_regions as ["EU", "EEA", "CH"]
}

test_provider_region_rule_off if {
	allowed(decide({"request": {"provider": {"name": "us-bsp", "region": "US"}}})) with data.consentledger.config.rules.provider_region as false
}

# ---------------------------------------------------------------------------
# Marketing quiet hours in the subject's zone.

test_deny_quiet_hours_evening_de if {
	# 21:30 UTC is 22:30 in Berlin (CET, UTC+1).
	d := decide({"now": "2026-11-26T21:30:00Z"})
	d == {"allow": false, "reasons": ["quiet_hours: 22:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default"]}
}

test_deny_quiet_hours_early_morning_de if {
	denied(decide({"now": "2026-11-26T06:59:00Z"}), "quiet_hours")
}

test_allow_quiet_hours_edges_de if {
	allowed(decide({"now": "2026-11-26T07:00:00Z"})) # 08:00 Berlin
	allowed(decide({"now": "2026-11-26T20:59:00Z"})) # 21:59 Berlin
	denied(decide({"now": "2026-11-26T21:00:00Z"}), "quiet_hours") # 22:00 Berlin
}

test_quiet_hours_use_subject_zone if {
	# 21:30 UTC is 16:30 in New York (EST).
	allowed(decide({"now": "2026-11-26T21:30:00Z", "request": {"subject_timezone": "America/New_York"}}))
}

test_quiet_hours_default_zone_when_empty if {
	denied(decide({"now": "2026-11-26T21:30:00Z", "request": {"subject_timezone": ""}}), "quiet_hours")
}

test_quiet_hours_summer_time if {
	# 20:30 UTC in July is 22:30 in Berlin (CEST, UTC+2).
	denied(decide({"now": "2026-07-16T20:30:00Z"}), "quiet_hours")
	allowed(decide({"now": "2026-07-16T19:30:00Z"}))
}

test_deny_quiet_hours_fr_evening if {
	d := decide({"now": "2026-11-26T19:30:00Z", "request": {"subject_timezone": "Europe/Paris"}, "subject": {"country": "FR"}})
	d.reasons == ["quiet_hours: 20:30 in Europe/Paris is inside the marketing quiet hours 20:00-08:00 for FR"]
}

test_allow_fr_weekday_daytime if {
	allowed(decide({"request": {"subject_timezone": "Europe/Paris"}, "subject": {"country": "FR"}}))
	allowed(decide({"now": "2026-11-26T18:59:00Z", "request": {"subject_timezone": "Europe/Paris"}, "subject": {"country": "FR"}}))
}

test_deny_fr_sunday if {
	d := decide({"now": "2026-11-29T10:00:00Z", "request": {"subject_timezone": "Europe/Paris"}, "subject": {"country": "FR"}})
	d == {"allow": false, "reasons": ["quiet_hours: Sunday in Europe/Paris is a marketing rest day for FR"]}
}

test_allow_de_sunday if {
	allowed(decide({"now": "2026-11-29T10:00:00Z"}))
}

test_quiet_hours_us if {
	us := {"request": {"subject_timezone": "America/New_York"}, "subject": {"country": "US"}}
	allowed(decide(object.union(us, {"now": "2026-11-27T01:30:00Z"}))) # 20:30 New York
	d := decide(object.union(us, {"now": "2026-11-27T02:30:00Z"})) # 21:30 New York
	d.reasons == ["quiet_hours: 21:30 in America/New_York is inside the marketing quiet hours 21:00-08:00 for US"]
}

test_quiet_hours_other_country_uses_default if {
	denied(decide({"now": "2026-11-26T21:30:00Z", "subject": {"country": "GB"}}), "quiet_hours")
	allowed(decide({"now": "2026-11-26T20:30:00Z", "subject": {"country": "GB"}}))
}

test_quiet_hours_not_for_non_marketing if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"now": "2026-11-26T23:30:00Z", "request": {"purpose": "order_updates", "category": "utility"}}))
}

test_quiet_hours_from_data if {
	d := decide({"now": "2026-11-26T20:30:00Z"}) with data.consentledger.config.quiet_hours.default as {"start": "21:00", "end": "09:00", "days": []}
	denied(d, "quiet_hours")
}

test_quiet_hours_daytime_window if {
	q := {"start": "12:00", "end": "14:00", "days": []}
	denied(decide({"now": "2026-11-26T11:30:00Z"}), "quiet_hours") with data.consentledger.config.quiet_hours.default as q
	allowed(decide({"now": "2026-11-26T13:00:00Z"})) with data.consentledger.config.quiet_hours.default as q
}

test_quiet_hours_rule_off if {
	allowed(decide({"now": "2026-11-26T21:30:00Z"})) with data.consentledger.config.rules.quiet_hours as false
}

# ---------------------------------------------------------------------------
# An open breach on the channel freezes marketing.

breach_wa := {"breach_id": "br-1", "status": "open", "channels": ["whatsapp", "sms"], "detected_at": "2026-11-25T08:00:00Z"}

test_deny_marketing_during_breach if {
	d := decide({"breaches": [breach_wa]})
	d == {"allow": false, "reasons": ["breach_freeze: open breach br-1 affects whatsapp; marketing on it is frozen"]}
}

test_allow_breach_on_other_channel if {
	allowed(decide({"breaches": [object.union(breach_wa, {"channels": ["sms"]})]}))
}

test_allow_closed_breach if {
	allowed(decide({"breaches": [object.union(breach_wa, {"status": "closed"})]}))
}

test_allow_non_marketing_during_breach if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"breaches": [breach_wa], "request": {"purpose": "order_updates", "category": "utility"}}))
}

test_breach_freeze_rule_off if {
	allowed(decide({"breaches": [breach_wa]})) with data.consentledger.config.rules.breach_freeze as false
}

# ---------------------------------------------------------------------------
# Customer-service window: a reply needs no opt-in.

reply := {"request": {"purpose": "support", "category": "service", "service_window_open": true}}

test_allow_reply_in_service_window if {
	d := decide_consents({}, reply)
	d == {"allow": true, "reasons": ["service_window: reply inside an open customer-service window needs no marketing consent"]}
}

test_allow_reply_in_service_window_at_night_during_breach if {
	allowed(decide_consents({}, object.union(reply, {"now": "2026-11-26T23:00:00Z", "breaches": [breach_wa]})))
}

test_deny_reply_when_window_closed if {
	d := decide_consents({}, object.union(reply, {"request": {"service_window_open": false}}))
	d.reasons == ["no_consent: no opt-in for whatsapp/support"]
}

test_deny_marketing_template_in_service_window if {
	d := decide_consents({}, {"request": {"service_window_open": true}})
	d.reasons == ["no_consent: no opt-in for whatsapp/marketing"]
}

test_deny_service_window_outside_whatsapp if {
	d := decide_consents({}, object.union(reply, {"request": {"channel": "sms", "category": ""}}))
	d.reasons == ["no_consent: no opt-in for sms/support"]
}

test_service_window_keeps_provider_region if {
	d := decide_consents({}, object.union(reply, {"request": {"provider": {"name": "us-bsp", "region": "US"}}}))
	d.reasons == ["provider_region_not_allowed: WhatsApp provider us-bsp is in region \"US\", allowed are EU, EEA"]
}

test_service_window_rule_off if {
	denied(decide_consents({}, reply), "no_consent") with data.consentledger.config.rules.service_window as false
}

# ---------------------------------------------------------------------------
# A WhatsApp template categorised as marketing is marketing.

promo := {"request": {"purpose": "order_updates", "category": "marketing"}}

test_marketing_template_relies_on_marketing_consent if {
	d := decide(promo)
	d == {"allow": true, "reasons": [
		consent_reason,
		doi_reason,
		"template_category: a marketing template counts as marketing, so it relies on the opt-in for whatsapp/marketing",
	]}
}

test_deny_marketing_template_without_marketing_consent if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	d := decide_consents({"whatsapp": {"order_updates": order}}, promo)
	d.reasons == ["no_consent: no opt-in for whatsapp/marketing"]
}

test_marketing_template_gets_quiet_hours_and_double_opt_in if {
	d := decide_consents({"whatsapp": {"marketing": single}}, object.union(promo, {"now": "2026-11-26T22:30:00Z"}))
	d.reasons == [
		"double_opt_in_required: marketing opt-in for whatsapp/marketing was not confirmed by double opt-in",
		"quiet_hours: 23:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default",
	]
}

test_utility_template_is_not_marketing if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	allowed(decide_consents({"whatsapp": {"order_updates": order}}, {"now": "2026-11-26T22:30:00Z", "request": {"purpose": "order_updates", "category": "utility"}}))
}

test_template_category_rule_off if {
	order := {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout", "notice_version": "2026-01"}
	d := decide_consents({"whatsapp": {"order_updates": order}}, promo) with data.consentledger.config.rules.template_category as false
	d.reasons == ["consent: opt-in for whatsapp/order_updates granted 2026-01-05 by checkout (notice 2026-01)"]
}

# ---------------------------------------------------------------------------
# optout_scope: an SMS opt-out also covers RCS.

rcs_grant := object.union(granted_marketing, {"granted_at": "2026-02-01T09:00:00Z", "grant_index": 20, "confirmed_via": "rcs"})

sms_withdrawn := object.union(granted_marketing, {"status": "withdrawn", "withdrawn_at": "2026-03-01T12:00:00Z", "withdrawal_index": 30})

rcs := {"request": {"channel": "rcs", "category": ""}}

test_deny_rcs_after_sms_opt_out if {
	d := decide_consents({"rcs": {"marketing": rcs_grant}, "sms": {"marketing": sms_withdrawn}}, rcs)
	d == {"allow": false, "reasons": ["opted_out_on_related_channel: opt-out on sms/marketing 2026-03-01 also covers rcs"]}
}

test_allow_rcs_granted_after_sms_opt_out if {
	later := object.union(rcs_grant, {"granted_at": "2026-04-01T09:00:00Z", "grant_index": 50})
	allowed(decide_consents({"rcs": {"marketing": later}, "sms": {"marketing": sms_withdrawn}}, rcs))
}

test_related_channel_compares_times_without_indexes if {
	g := json.remove(rcs_grant, ["grant_index"])
	denied(decide_consents({"rcs": {"marketing": g}, "sms": {"marketing": sms_withdrawn}}, rcs), "opted_out_on_related_channel")
	late := object.union(g, {"granted_at": "2026-04-01T09:00:00Z"})
	allowed(decide_consents({"rcs": {"marketing": late}, "sms": {"marketing": sms_withdrawn}}, rcs))
}

test_rcs_opt_out_does_not_cover_sms if {
	d := decide_consents({"sms": {"marketing": object.union(rcs_grant, {"confirmed_via": "sms"})}, "rcs": {"marketing": sms_withdrawn}}, {"request": {"channel": "sms", "category": ""}})
	allowed(d)
}

test_sms_opt_out_does_not_cover_whatsapp if {
	allowed(decide_consents({"whatsapp": {"marketing": object.union(rcs_grant, {"confirmed_via": "whatsapp"})}, "sms": {"marketing": sms_withdrawn}}, {}))
}

test_sms_opt_out_other_purpose_does_not_cover if {
	allowed(decide_consents({"rcs": {"marketing": rcs_grant}, "sms": {"newsletter": sms_withdrawn}}, rcs))
}

test_optout_scope_rule_off if {
	allowed(decide_consents({"rcs": {"marketing": rcs_grant}, "sms": {"marketing": sms_withdrawn}}, rcs)) with data.consentledger.config.rules.optout_scope as false
}

test_optout_scope_from_data if {
	c := {"whatsapp": {"marketing": object.union(rcs_grant, {"confirmed_via": "whatsapp"})}, "sms": {"marketing": sms_withdrawn}}
	denied(decide_consents(c, {}), "opted_out_on_related_channel") with data.consentledger.config.optout_scope as {"sms": ["rcs", "whatsapp"]}
}

# ---------------------------------------------------------------------------
# Reasons: every failing rule, sorted.

test_deny_lists_every_failing_rule_sorted if {
	d := decide_consents({"whatsapp": {"marketing": single}}, {
		"now": "2026-11-26T22:30:00Z",
		"request": {"provider": {"name": "us-bsp", "region": "US"}},
		"breaches": [breach_wa],
	})
	d == {"allow": false, "reasons": [
		"breach_freeze: open breach br-1 affects whatsapp; marketing on it is frozen",
		"double_opt_in_required: marketing opt-in for whatsapp/marketing was not confirmed by double opt-in",
		"provider_region_not_allowed: WhatsApp provider us-bsp is in region \"US\", allowed are EU, EEA",
		"quiet_hours: 23:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default",
	]}
}

test_every_reason_has_code_and_sentence if {
	d := decide_consents({"whatsapp": {"marketing": single}}, {"now": "2026-11-26T22:30:00Z", "breaches": [breach_wa]})
	every r in d.reasons {
		regex.match(`^[a-z][a-z_]*: \S`, r)
	}
}

# ---------------------------------------------------------------------------
# Input the rules cannot read is denied.

test_deny_missing_now if {
	d := send.decision with input as json.remove(base, ["now"])
	d.reasons == ["invalid_input: now is missing or not an RFC 3339 time"]
}

test_deny_missing_channel_and_purpose if {
	d := send.decision with input as json.remove(base, ["request/channel", "request/purpose"])
	denied(d, "invalid_input")
	count([r | some r in d.reasons; startswith(r, "invalid_input: ")]) == 2
}

test_deny_granted_without_time if {
	d := decide_consents({"whatsapp": {"marketing": json.remove(granted_marketing, ["granted_at"])}}, {})
	d.reasons == ["invalid_input: granted opt-in for whatsapp/marketing has no granted_at"]
}

test_deny_empty_input if {
	d := send.decision with input as {}
	d == {"allow": false, "reasons": [
		"invalid_input: now is missing or not an RFC 3339 time",
		"invalid_input: request.channel is missing",
		"invalid_input: request.purpose is missing",
	]}
}

test_service_window_without_category if {
	d := decide_consents({}, {"request": {"purpose": "support", "category": "", "service_window_open": true}})
	allowed(d)
	has(d, "service_window")
}
