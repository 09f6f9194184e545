# METADATA
# title: Inbound keywords
# description: >-
#   Maps an inbound message ("STOP", "Abmelden", "arrêt") to an action. The
#   whole message must be a keyword; case, accents and spaces are ignored.
#   Keyword lists per language and the accent table live in data.json under
#   consentledger.config.inbound.
package consentledger.inbound

import data.consentledger.config

# text is the inbound message normalised for matching: white space
# (including no-break and zero-width spaces) removed, upper case, and, only
# for text with non-ASCII letters, accented capitals folded to plain ones
# with the table config.inbound.fold ("Ê" -> "E", "ß" -> "SS", ...).
text := strings.replace_n(config.inbound.fold, squeezed) if {
	regex.match(`[^\x00-\x7F]`, squeezed)
} else := squeezed

squeezed := upper(regex.replace(input.text, `[\s\x{00A0}\x{2007}\x{202F}\x{200B}\x{FEFF}]+`, ""))

# matches is the set of actions whose keyword lists hold text. Keywords in
# data.json are written in capitals without accents (config_test.rego checks
# this). The first rule finds keywords written without spaces; the second
# those written with spaces, which are ignored ("STOP ALL" matches "stopall").
matches contains act if {
	some lang, act
	text in config.inbound.keywords[lang][act]
}

matches contains act if {
	some lang, act
	some k in config.inbound.keywords[lang][act]
	contains(k, " ")
	concat("", split(k, " ")) == text
}

# action is "opt_out", "opt_in", "help" or "none". Should a text be listed
# under several actions, opt_out wins over opt_in over help.
default action := "none"

action := "opt_out" if {
	"opt_out" in matches
} else := "opt_in" if {
	"opt_in" in matches
} else := "help" if {
	"help" in matches
}

# keyword is the normalised keyword that matched, "" when none did. Only
# this, never the rest of the message, is recorded in the ledger.
default keyword := ""

keyword := text if action != "none"
