# METADATA
# title: Send decision
# description: >-
#   May this message be sent to this person now? The ledger evaluates
#   data.consentledger.send.decision before every send and records the input,
#   the answer and this policy's digest. Every threshold and switch lives in
#   data.json under consentledger.config; README.md describes the input
#   document and the law each rule serves.
package consentledger.send

import data.consentledger.config

# This policy runs before every message, so it is written to evaluate
# quickly. In OPA each reference to another rule costs about as much as a
# few conditions, even once its value is known, so:
# - a rule that needs a helper's value several times names it once
#   (`g := granted_consent`) and reads the copy;
# - each rule tests first the condition that fails soonest for an ordinary
#   allowed send, and a reason's sentence is only built when the rule
#   applies;
# - values used by a later condition are named before it, so that a
#   built-in that could fail on odd input (a time that is not a time) is
#   reached under exactly the conditions stated in the rule.
# Reading data.json (`config.…`) costs nothing: the ledger writes its values
# into the rules when it compiles the policy. The tests in send_test.rego pin
# the behaviour; keep them passing when you edit.

# decision is the answer: {"allow": bool, "reasons": [string]}. A denial
# lists every failing rule; an allowed send lists what allowed it. Reasons
# are "code: sentence", sorted.
decision := {"allow": false, "reasons": reasons} if {
	reasons := sort(deny)
	reasons != []
} else := {"allow": true, "reasons": reasons} if {
	reasons := sort(grounds)
	reasons != []
} else := {"allow": true, "reasons": ["no_restriction: no enabled rule restricts this send"]}

# ---------------------------------------------------------------------------
# What kind of message is this?

# marketing: the send's purpose is a marketing purpose, or its template
# category is a marketing category (config.marketing_purposes,
# config.marketing_categories).
marketing if input.request.purpose in config.marketing_purposes

marketing if template_marketing

# template_marketing: a (WhatsApp) template categorised as marketing is
# marketing, whatever purpose the sender states (rules.template_category).
template_marketing if {
	config.rules.template_category
	input.request.category in config.marketing_categories
}

# consent_purpose is the purpose whose opt-in the send relies on: the stated
# purpose, or the marketing purpose for a marketing template sent under
# another purpose.
consent_purpose := config.marketing_consent_purpose if {
	purpose := input.request.purpose
	not purpose in config.marketing_purposes
	template_marketing
} else := input.request.purpose

# consent is the subject's consent record for the channel and that purpose.
consent := input.subject.consents[input.request.channel][consent_purpose]

# service_window: a reply inside an open WhatsApp customer-service window
# needs no opt-in (rules.service_window) — unless it is marketing by purpose
# or template category, or the person withdrew consent for its purpose. The
# window lifts WhatsApp's platform opt-in, not UWG §7(2) Nr. 2 (BGH VI ZR
# 134/15: advertising in a service reply against the recipient's will is
# unlawful): marketing always needs consent and a withdrawal always wins.
service_window if {
	input.request.service_window_open == true
	input.request.channel == "whatsapp"
	config.rules.service_window
	not marketing
	not consent_ended
}

# consent_ended: the record for the channel and purpose was withdrawn or erased.
consent_ended if consent.status == "withdrawn"

consent_ended if consent.status == "erased"

# consent_basis: the send relies on consent (GDPR Art. 6(1)(a)), so the
# consent rules apply: unless the request names another legal basis (below)
# and rules.legal_basis is on. (One rule body: OPA evaluates every body of a
# rule on every decision.)
consent_basis if not other_basis

other_basis if {
	basis := input.request.legal_basis
	not basis in {"", "consent"}
	config.rules.legal_basis
}

# granted: the consent rules apply and the opt-in is granted.
granted if granted_consent

# granted_consent is the consent record when `granted` holds: the rules
# below that need both read this one value.
granted_consent := c if {
	c := consent
	c.status == "granted"
	config.rules.consent
	not service_window
	consent_basis
}

now_ns := time.parse_rfc3339_ns(now) if {
	now := input.now
	is_string(now)
}

# ---------------------------------------------------------------------------
# Input checks: a document the rules cannot read is denied, never allowed.

deny contains "invalid_input: now is missing or not an RFC 3339 time" if not now_ns

deny contains "invalid_input: request.channel is missing" if not input.request.channel

deny contains "invalid_input: request.channel is missing" if input.request.channel == ""

deny contains "invalid_input: request.purpose is missing" if not input.request.purpose

deny contains "invalid_input: request.purpose is missing" if input.request.purpose == ""

deny contains concat("", ["invalid_input: granted opt-in for ", input.request.channel, "/", consent_purpose, " has no granted_at"]) if {
	g := granted_consent
	not g.granted_at
}

# ---------------------------------------------------------------------------
# Consent for the channel and purpose (GDPR Art. 6(1)(a), 7(1); UWG §7(2)
# and (3)): rules.consent. A withdrawal (Art. 7(3), 21) or an erasure ends it.

# consent_problem (below) is defined exactly when the opt-in is not granted,
# so `not granted_consent` comes first: it settles an ordinary send at once.
deny contains consent_problem if {
	not granted_consent
	config.rules.consent
	not service_window
	consent_basis
}

# consent_problem is why the consent record does not allow the send;
# undefined when it is granted.
consent_problem := concat("", ["no_consent: no opt-in for ", input.request.channel, "/", consent_purpose]) if {
	not consent
} else := concat("", [
	"consent_withdrawn: opt-in for ", input.request.channel, "/", consent_purpose,
	" was withdrawn ", day(consent, "withdrawn_at"),
]) if {
	consent.status == "withdrawn"
} else := concat("", ["subject_erased: the subject was erased; no opt-in for ", input.request.channel, "/", consent_purpose, " can be relied on"]) if {
	consent.status == "erased"
} else := concat("", ["no_consent: opt-in for ", input.request.channel, "/", consent_purpose, " has status \"", format_status, "\""]) if {
	not consent.status == "granted"
}

format_status := consent.status if {
	is_string(consent.status)
} else := "(missing or not a string)"

# day(obj, key) is the day of the RFC 3339 time obj[key], "YYYY-MM-DD".
day(obj, key) := substring(obj[key], 0, 10) if {
	is_string(obj[key])
} else := "(date unknown)"

grounds contains concat("", [
	"consent: opt-in for ", input.request.channel, "/", consent_purpose,
	" granted ", substring(g.granted_at, 0, 10),
	" by ", object.get(g, "method", "unknown method"),
	" (notice ", object.get(g, "notice_version", "unknown"), ")",
]) if {
	g := granted_consent
}

# (The service window is open only if service_window_open is true; testing
# that first lets OPA skip this rule for other sends without evaluating it.)
grounds contains "service_window: reply inside an open customer-service window needs no marketing consent" if {
	input.request.service_window_open == true
	service_window
	config.rules.consent
	consent_basis
}

grounds contains concat("", ["template_category: a marketing template counts as marketing, so it relies on the opt-in for ", input.request.channel, "/", consent_purpose]) if {
	consent_purpose != input.request.purpose
	granted
}

# ---------------------------------------------------------------------------
# Refresh (rules.consent_refresh): marketing consent unused for
# consent_refresh_after_days, counted from the later of the grant and the
# last allowed send, is stale; German courts let consent lapse after years
# of non-use.

deny contains concat("", [
	"consent_stale: marketing opt-in for ", input.request.channel, "/", consent_purpose, " unused for more than ",
	format_int(config.consent_refresh_after_days, 10), " days; ask for consent again",
]) if {
	g := granted_consent
	marketing
	config.rules.consent_refresh
	cutoff := now_ns - (config.consent_refresh_after_days * 86400000000000)
	time.parse_rfc3339_ns(g.granted_at) < cutoff
	time.parse_rfc3339_ns(object.get(g, "last_allowed_send_at", g.granted_at)) < cutoff
}

# ---------------------------------------------------------------------------
# Privacy notice (rules.notice_version, config.notice_min_version; GDPR Art.
# 7(1), 13): a legal team can require that marketing consent was
# given under a privacy notice at least as new as a version (versions
# compare as text, e.g. "2026-11"; empty, the default: no minimum). The
# grant's notice is the consent's notice_version and notice_language (the
# language shown; absent for grants that name no published notice).

deny contains concat("", [
	"notice_outdated: marketing opt-in for ", input.request.channel, "/", consent_purpose,
	" was given under privacy notice ", object.get(g, "notice_version", "(none)"), ", older than the required ",
	config.notice_min_version, "; ask for consent again with the current notice",
]) if {
	config.notice_min_version != ""
	config.rules.notice_version
	g := granted_consent
	marketing
	object.get(g, "notice_version", "") < config.notice_min_version
}

# ---------------------------------------------------------------------------
# Double opt-in for marketing (rules.double_opt_in; GDPR Art. 7(1): the
# controller must be able to prove the consent).

# Double opt-in counts only when confirmed on the channel the consent is
# for (confirmed_via): a confirmation e-mail proves consent to e-mail, not
# to SMS or WhatsApp advertising (BGH I ZR 164/09). A record without
# confirmed_via (documents from before it was recorded; the ledger fills it
# for every confirmation, reading old entries as confirmed on their own
# channel) counts as confirmed on its channel.

deny contains concat("", ["double_opt_in_required: marketing opt-in for ", input.request.channel, "/", consent_purpose, " was not confirmed by double opt-in"]) if {
	g := granted_consent
	not g.double_opt_in == true
	marketing
	config.rules.double_opt_in
}

deny contains concat("", [
	"double_opt_in_wrong_channel: marketing opt-in for ", input.request.channel, "/", consent_purpose,
	" was confirmed via ", via, ", not on ", input.request.channel, "; confirm it on ", input.request.channel,
]) if {
	g := granted_consent
	g.double_opt_in == true
	via := g.confirmed_via
	via != input.request.channel
	marketing
	config.rules.double_opt_in
}

grounds contains concat("", ["double_opt_in: marketing opt-in for ", input.request.channel, "/", consent_purpose, " was confirmed by double opt-in"]) if {
	g := granted_consent
	g.double_opt_in == true
	object.get(g, "confirmed_via", input.request.channel) == input.request.channel
	marketing
	config.rules.double_opt_in
}

# ---------------------------------------------------------------------------
# WhatsApp only through a provider in an allowed region
# (rules.provider_region, config.allowed_provider_regions).

deny contains concat("", [
	"provider_region_not_allowed: WhatsApp provider ", object.get(input.request, ["provider", "name"], ""),
	" is in region \"", region, "\", allowed are ", concat(", ", config.allowed_provider_regions),
]) if {
	input.request.channel == "whatsapp"
	config.rules.provider_region
	region := upper(object.get(input.request, ["provider", "region"], ""))
	not region in config.allowed_provider_regions
}

# ---------------------------------------------------------------------------
# Marketing quiet hours in the subject's time zone, per country of the phone
# number (rules.quiet_hours, config.quiet_hours; UWG §7(1): no unreasonable
# nuisance). Times are "HH:MM" and compare as text. The local time t is
# inside [start, end) when t >= start and t < end hold together; for a
# window that wraps midnight (start > end), when they do not.

deny contains concat("", ["quiet_hours: ", t, " in ", zone, " is inside the marketing quiet hours ", q.start, "-", q.end, " ", quiet_label]) if {
	marketing
	config.rules.quiet_hours
	q := quiet
	t := time.format([now_ns, zone, "15:04"])
	wraps := q.start > q.end
	together := (t >= q.start) == (t < q.end)
	together != wraps
}

deny contains concat("", ["quiet_hours: ", rest, " in ", zone, " is a marketing rest day ", quiet_label]) if {
	some rest in quiet.days
	marketing
	config.rules.quiet_hours
	time.weekday([now_ns, zone]) == rest
}

# zone is the subject's IANA time zone: the one the request gives, else the
# zone of the phone number's country (config.timezones.countries), else —
# for a number of no country (e-mail) or of a country not listed —
# config.default_timezone. It is undefined for a country that spans several
# zones (config.timezones.multi_zone) when the request gives none.
zone := tz if {
	tz := input.request.subject_timezone
	tz != ""
} else := tz if {
	tz := config.timezones.countries[input.subject.country]
} else := config.default_timezone if {
	not input.subject.country in config.timezones.multi_zone
}

# A country that spans several zones and no zone given: the local time is
# unknown, so marketing is denied rather than sent at night somewhere (for
# the US, 47 CFR 64.1200(c)(1): 8 a.m. to 9 p.m. at the called party's
# location).
deny contains concat("", [
	"timezone_required: ", input.subject.country, " spans several time zones and the request gives no subject_timezone;",
	" marketing quiet hours need the subject's zone",
]) if {
	object.get(input.request, "subject_timezone", "") == ""
	marketing
	config.rules.quiet_hours
	not zone
}

# quiet is the subject's country's quiet hours, or the company default.
quiet := config.quiet_hours.countries[input.subject.country] if {
	config.quiet_hours.countries[input.subject.country]
} else := config.quiet_hours.default

quiet_label := concat("", ["for ", input.subject.country]) if {
	config.quiet_hours.countries[input.subject.country]
} else := "by default"

# ---------------------------------------------------------------------------
# An open data breach on the channel freezes marketing on it
# (rules.breach_freeze; GDPR Art. 33, 34). The input lists open breaches.

# The freeze never holds back the Art. 34 communication to the affected
# people (purpose in config.breach_notice_purposes, under the legal basis
# legal_obligation), which is not marketing.

deny contains concat("", ["breach_freeze: open breach ", object.get(b, "breach_id", "(unnamed)"), " affects ", input.request.channel, "; marketing on it is frozen"]) if {
	some b in input.breaches
	input.request.channel in b.channels
	not b.status == "closed"
	marketing
	config.rules.breach_freeze
	not input.request.purpose in config.breach_notice_purposes
}

# ---------------------------------------------------------------------------
# An opt-out on one channel also covers related channels (rules.optout_scope,
# config.optout_scope: e.g. an SMS STOP also stops RCS, as carriers do).
# Ledger order (entry indexes) decides which came first when both are known,
# otherwise the recorded times.

deny contains concat("", [
	"opted_out_on_related_channel: opt-out on ", src, "/", consent_purpose, " ",
	day(w, "withdrawn_at"), " also covers ", input.request.channel,
]) if {
	some src, covered in config.optout_scope
	input.request.channel in covered
	w := input.subject.consents[src][consent_purpose]
	w.status == "withdrawn"
	g := granted_consent
	config.rules.optout_scope
	withdrawn_after_grant(w, g)
}

# withdrawn_after_grant: withdrawal w came after grant g.
withdrawn_after_grant(w, g) if w.withdrawal_index > g.grant_index

withdrawn_after_grant(w, g) if {
	not both_indexed(w, g)
	time.parse_rfc3339_ns(w.withdrawn_at) > time.parse_rfc3339_ns(g.granted_at)
}

both_indexed(w, g) if {
	is_number(w.withdrawal_index)
	is_number(g.grant_index)
}

# ---------------------------------------------------------------------------
# An objection to direct marketing (GDPR Art. 21(2), (3); rules.objection):
# after it, no marketing purpose on any channel — unless the person gave a
# new opt-in for the channel and purpose after the objection. Ledger order
# decides when both are indexed, otherwise the recorded times.

deny contains concat("", [
	"objection: the subject objected to direct marketing ", day(o, "at"),
	" (GDPR Art. 21(3)); no marketing on any channel without a new opt-in",
]) if {
	o := input.subject.objection
	marketing
	config.rules.objection
	not granted_after_objection(o)
}

granted_after_objection(o) if {
	g := granted_consent
	g.grant_index > o.index
}

granted_after_objection(o) if {
	g := granted_consent
	not is_number(object.get(g, "grant_index", null))
	time.parse_rfc3339_ns(g.granted_at) > time.parse_rfc3339_ns(o.at)
}

granted_after_objection(o) if {
	g := granted_consent
	not is_number(object.get(o, "index", null))
	time.parse_rfc3339_ns(g.granted_at) > time.parse_rfc3339_ns(o.at)
}

# ---------------------------------------------------------------------------
# Legal bases other than consent (rules.legal_basis): a one-time code rests
# on the contract (GDPR Art. 6(1)(b)), an Art. 34 breach notice on a legal
# obligation (Art. 6(1)(c)). Such a send skips the consent rules, but only
# for the purposes config.legal_bases lists for its basis, and never for
# marketing: advertising needs consent (UWG §7(2), GDPR Art. 21(2)).

deny contains concat("", [
	"legal_basis_not_for_marketing: marketing cannot rely on ", basis,
	"; it needs consent (UWG §7(2))",
]) if {
	other_basis
	marketing
	basis := input.request.legal_basis
}

deny contains concat("", [
	"legal_basis_not_applicable: purpose ", input.request.purpose, " cannot rely on ", basis,
	"; data.json legal_bases lists the purposes each basis covers",
]) if {
	other_basis
	basis := input.request.legal_basis
	not input.request.purpose in object.get(config.legal_bases, basis, [])
}

grounds contains concat("", [
	"legal_basis: ", input.request.channel, "/", input.request.purpose, " relies on ", basis,
	" (", object.get(legal_basis_articles, basis, "GDPR Art. 6(1)"), "), not on consent",
]) if {
	other_basis
	basis := input.request.legal_basis
}

legal_basis_articles := {"contract": "GDPR Art. 6(1)(b)", "legal_obligation": "GDPR Art. 6(1)(c)"}
