# Tests of the inbound keyword mapping: every keyword of every language, and
# the folding of case, accents and spaces.
package consentledger.inbound_test

import data.consentledger.inbound

# act(t) is the action for the inbound text t.
act(t) := a if {
	a := inbound.action with input as {"text": t}
}

kw(t) := k if {
	k := inbound.keyword with input as {"text": t}
}

all_map(texts, want) if {
	every t in texts {
		act(t) == want
	}
}

test_english if {
	all_map(["STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"], "opt_out")
	all_map(["START", "YES", "UNSTOP"], "opt_in")
	all_map(["HELP", "INFO"], "help")
}

test_german if {
	all_map(["STOPP", "ABMELDEN", "ABBESTELLEN", "AUSTRAGEN", "ENDE"], "opt_out")
	all_map(["ANMELDEN", "JA"], "opt_in")
	all_map(["HILFE"], "help")
}

test_french if {
	all_map(["ARRET", "ARRETER", "arrêt", "Arrêter", "ARRÊT"], "opt_out")
	all_map(["AIDE", "aide"], "help")
}

test_spanish if {
	all_map(["BAJA", "DETENER", "SALIR", "baja"], "opt_out")
	all_map(["ALTA", "Alta"], "opt_in")
}

test_portuguese if {
	all_map(["PARAR", "CANCELAR", "parar", "Cancelar"], "opt_out")
}

test_case_space_insensitive if {
	all_map(["stop", "Stop", " stop ", "STOP ALL", "stopall", " Stop  All ", "stop\tall\n", "Stop\u00a0All", "s t o p"], "opt_out")
	all_map(["abmelden", "Ab Melden", "  Abmelden  "], "opt_out")
	all_map(["hilfe", "Help", "info"], "help")
}

test_accent_folding if {
	all_map(["ÀRRET", "árret", "STÖPP", "Stöpp", "Ärret"], "opt_out")
	all_map(["JÀ", "Yës"], "opt_in")
}

test_whole_message_only if {
	all_map(["stop it", "please stop", "STOP!", "stop.", "stopp bitte", "I want help", ""], "none")
	all_map(["hello", "ok", "12345", "🛑"], "none")
}

test_keyword_is_normalised if {
	kw(" Stop  All ") == "STOPALL"
	kw("stopall") == "STOPALL"
	kw("arrêt") == "ARRET"
	kw("Abmelden") == "ABMELDEN"
	kw("hilfe") == "HILFE"
}

test_no_keyword_when_none if {
	kw("please call me") == ""
	act("please call me") == "none"
}

test_opt_out_wins_when_listed_twice if {
	a := inbound.action with input as {"text": "ja"}
		with data.consentledger.config.inbound.keywords.de.opt_out as ["JA"]
	a == "opt_out"
}

test_keywords_from_data if {
	a := inbound.action with input as {"text": "Afmelden"}
		with data.consentledger.config.inbound.keywords.nl as {"opt_out": ["AFMELDEN"], "opt_in": [], "help": []}
	a == "opt_out"
	act("Afmelden") == "none"
}
