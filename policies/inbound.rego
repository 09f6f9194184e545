# METADATA
# title: Inbound keywords
# description: >-
#   Maps an inbound message ("STOP", "Stopp bitte", "arrêt!") or a platform
#   signal to an action. The whole message, after dropping punctuation and a
#   short list of politeness and channel words, must be a keyword; case,
#   accents and spaces are ignored. A message that only looks like an
#   opt-out ("keine Werbung mehr") goes to a person (review). Keyword lists,
#   the words dropped, the review list, the help reply and the accent table
#   live in data.json under consentledger.config.inbound.
package consentledger.inbound

import data.consentledger.config

# Signals other than text (HandleInbound.signal).
signal_stop_promotions := "whatsapp_stop_promotions"

# folded is the message in upper case, and, only for text with non-ASCII
# letters, accented capitals folded to plain ones with the table
# config.inbound.fold ("Ê" -> "E", "ß" -> "SS", ...).
folded := strings.replace_n(config.inbound.fold, upper_text) if {
	regex.match(`[^\x00-\x7F]`, upper_text)
} else := upper_text

upper_text := upper(object.get(input, "text", ""))

# words are the message's words: apostrophes dropped ("DON'T" -> "DONT"),
# every other character but A-Z and 0-9 (punctuation, white space including
# no-break and zero-width spaces, emoji) a separator, and the politeness and
# channel words of config.inbound.ignore_words left out ("STOPP BITTE",
# "STOP SMS").
words := [w |
	some w in split(regex.replace(regex.replace(folded, `['’]`, ""), `[^A-Z0-9]+`, " "), " ")
	w != ""
	not w in config.inbound.ignore_words
]

# text is the message normalised for keyword matching: its words joined
# without spaces, so "S T O P" and "stop all" match STOP and STOP ALL.
text := concat("", words)

# matches is the set of actions whose keyword lists hold text. Keywords in
# data.json are written in capitals without accents (config_test.rego checks
# this). The first rule finds keywords written as one word; the second those
# written with spaces or hyphens, which are ignored ("OPT-OUT" matches
# "opt out" and "optout").
matches contains act if {
	some lang, act
	text in config.inbound.keywords[lang][act]
}

matches contains act if {
	some lang, act
	some k in config.inbound.keywords[lang][act]
	regex.match(`[ -]`, k)
	regex.replace(k, `[ -]`, "") == text
}

# review_hits are the entries of config.inbound.review that the message
# contains: a listed word as one of its words, or a listed phrase as a run
# of its words. Such a message looks like an opt-out or an objection but is
# no keyword ("please stop texting me", "keine Werbung mehr"): a person
# must read it (GDPR Art. 7(3): a withdrawal needs no form).
review_hits contains w if {
	some w in config.inbound.review.words
	w in words
}

review_hits contains p if {
	spaced := concat("", [" ", concat(" ", words), " "])
	some p in config.inbound.review.phrases
	contains(spaced, concat("", [" ", p, " "]))
}

# action is "opt_out", "opt_in", "help", "review" or "none". WhatsApp's
# "Stop promotions" signal is an opt-out. Should a text be listed under
# several actions, opt_out wins over opt_in over help; review only applies
# to a text that is no keyword.
default action := "none"

action := "opt_out" if {
	input.signal == signal_stop_promotions
} else := "opt_out" if {
	"opt_out" in matches
} else := "opt_in" if {
	"opt_in" in matches
} else := "help" if {
	"help" in matches
} else := "review" if {
	count(review_hits) > 0
}

# keyword is what the ledger records of the message, "" when nothing
# matched: the normalised keyword, or for review the first matching entry
# of the review list — never the rest of the message.
default keyword := ""

keyword := min(review_hits) if {
	action == "review"
} else := text if {
	action != "none"
	not input.signal
}

# result adds to action and keyword what HandleInbound needs to act:
# - scope: "all_marketing" when the keyword is one of
#   config.inbound.objection_keywords (an objection to direct marketing,
#   Art. 21(3), on every channel), else "channel" (a withdrawal of the
#   channel's consent; the default for STOP);
# - purposes: the purposes an opt-out withdraws, [] meaning all on the
#   channel; the WhatsApp signal withdraws the marketing purposes only;
# - reply: for help, the help text (help_reply);
# - review_due_hours: how long a person has to handle a review.
result := {
	"action": action,
	"keyword": keyword,
	"scope": scope,
	"purposes": purposes,
	"reply": reply,
	"review_due_hours": config.inbound.review.due_hours,
}

scope := "all_marketing" if {
	action == "opt_out"
	text != ""
	some k in config.inbound.objection_keywords
	regex.replace(k, `[ -]`, "") == text
} else := "channel"

purposes := config.marketing_purposes if {
	input.signal == signal_stop_promotions
} else := []

# reply is the help text: one line per entry of config.inbound.help_reply
# whose field has a value in input.contact (the server's configuration:
# sender identity, support contact, how to opt out, privacy notice, data
# protection officer; GDPR Art. 13, 21(4)), "{}" replaced by the value. It
# carries no advertising. How to opt out defaults to
# config.inbound.help_opt_out_default.
reply := concat("\n", [line |
	some l in config.inbound.help_reply
	v := contact_value(l.field)
	v != ""
	line := replace(l.text, "{}", v)
]) if {
	action == "help"
} else := ""

contact_value(field) := v if {
	v := input.contact[field]
	is_string(v)
	v != ""
} else := config.inbound.help_opt_out_default if {
	field == "opt_out"
} else := ""
