# Tests of data.json itself: they catch a typo in a threshold or switch
# before a policy is published.
package consentledger.config_test

import data.consentledger.config

rules := {"consent", "consent_refresh", "double_opt_in", "provider_region", "quiet_hours", "breach_freeze", "service_window", "template_category", "optout_scope"}

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
				regex.match(`^[A-Z0-9]+( [A-Z0-9]+)*$`, w)
			}
		}
	}
}
