# Tests of data.json itself: they catch a typo in a threshold or switch
# before a policy is published.
package consentledger.config_test

import data.consentledger.config

rules := {"consent", "consent_refresh", "double_opt_in", "provider_region", "quiet_hours", "breach_freeze", "service_window", "template_category", "optout_scope", "objection", "legal_basis", "notice_version"}

test_every_rule_switch_present_and_boolean if {
	every r in rules {
		is_boolean(config.rules[r])
	}
	every r, _ in config.rules {
		r in rules
	}
}

test_thresholds_are_sane if {
	is_number(config.consent_refresh_after_days)
	config.consent_refresh_after_days > 0
	count(config.allowed_provider_regions) > 0
	every r in config.allowed_provider_regions {
		r == upper(r)
	}
	count(config.marketing_purposes) > 0
	every p in config.marketing_purposes {
		regex.match(`^[a-z][a-z0-9_]{0,63}$`, p)
	}
	regex.match(`^[a-z][a-z0-9_]{0,63}$`, config.marketing_consent_purpose)
	config.default_timezone != ""
}

weekdays := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

valid_window(q) if {
	regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, q.start)
	regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, q.end)
	every d in q.days {
		d in weekdays
	}
}

test_quiet_hours_are_hh_mm if {
	valid_window(config.quiet_hours.default)
	every c, q in config.quiet_hours.countries {
		regex.match(`^[A-Z]{2}$`, c)
		valid_window(q)
	}
}

channels := {"whatsapp", "sms", "rcs", "email"}

test_optout_scope_names_channels if {
	every from, covered in config.optout_scope {
		from in channels
		every c in covered {
			c in channels
			c != from
		}
	}
}

test_keywords_are_canonical if {
	actions := {"opt_out", "opt_in", "help"}
	every _, lists in config.inbound.keywords {
		every a, words in lists {
			a in actions
			every w in words {
				regex.match(`^[A-Z0-9]+([ -][A-Z0-9]+)*$`, w)
			}
		}
	}
}

test_keywords_keep_no_ignored_word if {
	every _, lists in config.inbound.keywords {
		every _, words in lists {
			every w in words {
				every part in split(regex.replace(w, `-`, " "), " ") {
					not part in config.inbound.ignore_words
				}
			}
		}
	}
	every w in config.inbound.ignore_words {
		regex.match(`^[A-Z0-9]+$`, w)
	}
}

test_review_list_is_canonical if {
	every w in config.inbound.review.words {
		regex.match(`^[A-Z0-9]+$`, w)
	}
	every p in config.inbound.review.phrases {
		regex.match(`^[A-Z0-9]+( [A-Z0-9]+)*$`, p)
	}
	is_number(config.inbound.review.due_hours)
	config.inbound.review.due_hours > 0
}

test_help_reply_fields if {
	fields := {"sender_name", "support_contact", "opt_out", "privacy_notice_url", "dpo_contact", "privacy_contact"}
	every l in config.inbound.help_reply {
		l.field in fields
		contains(l.text, "{}")
	}
	config.inbound.help_opt_out_default != ""
}

test_timezones_are_zones if {
	every c, z in config.timezones.countries {
		regex.match(`^[A-Z]{2}$`, c)
		regex.match(`^[A-Z][A-Za-z_]+(/[A-Za-z_+-]+)+$`, z)
		not c in config.timezones.multi_zone
	}
	every c in config.timezones.multi_zone {
		regex.match(`^[A-Z]{2}$`, c)
	}
	every c in ["US", "CA", "AU", "BR", "MX", "RU"] {
		c in config.timezones.multi_zone
	}
}

test_legal_bases_name_purposes if {
	every b, purposes in config.legal_bases {
		b in {"contract", "legal_obligation"}
		every p in purposes {
			regex.match(`^[a-z][a-z0-9_]{0,63}$`, p)
			not p in config.marketing_purposes
		}
	}
	"authentication" in config.legal_bases.contract
	every p in config.breach_notice_purposes {
		p in config.legal_bases.legal_obligation
	}
}
