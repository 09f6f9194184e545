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
	all_map(["STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT-OUT", "REMOVE", "STOPSMS"], "opt_out")
	all_map(["START", "YES", "UNSTOP"], "opt_in")
	all_map(["HELP", "INFO"], "help")
}

test_german if {
	all_map(["STOPP", "ABMELDEN", "ABBESTELLEN", "AUSTRAGEN", "ABMELDUNG", "ENDE"], "opt_out")
	all_map(["ANMELDEN", "JA"], "opt_in")
	all_map(["HILFE"], "help")
}

test_french if {
	all_map(["ARRET", "ARRETER", "arrêt", "Arrêter", "ARRÊT", "DESABONNER", "désabonner"], "opt_out")
	all_map(["AIDE", "aide"], "help")
}

test_spanish if {
	all_map(["BAJA", "DETENER", "SALIR", "baja"], "opt_out")
	all_map(["ALTA", "Alta"], "opt_in")
	all_map(["AYUDA", "ayuda"], "help")
}

test_portuguese if {
	all_map(["PARAR", "CANCELAR", "parar", "Cancelar", "SAIR", "sair"], "opt_out")
	all_map(["AJUDA", "ajuda"], "help")
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
	all_map(["stop it", "stop sending"], "review")
	all_map(["I want help", "", "restart", "Abmeldefrist?"], "none")
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

# ---------------------------------------------------------------------------
# Punctuation and politeness or channel words (data.json ignore_words) do
# not hide a keyword (policies/INBOUND.md).

test_punctuation_and_polite_words_dropped if {
	all_map(["STOP!", "Stop.", "stop!!!", "¡Stop!", "Stopp bitte", "Stopp, bitte!", "STOP SMS", "please stop", "Stop please.", "STOP WhatsApp", "opt-out", "Opt out", "Baja, por favor"], "opt_out")
	all_map(["Yes please!", "Ja bitte", "START."], "opt_in")
	all_map(["Help?", "HILFE!", "info please"], "help")
	kw("Stopp bitte!") == "STOPP"
	kw("STOP SMS") == "STOP"
	kw("opt-out") == "OPTOUT"
}

test_only_polite_words_is_none if {
	all_map(["please", "bitte!", "SMS", "thanks"], "none")
}

test_ignore_words_from_data if {
	a := inbound.action with input as {"text": "stop jetzt"}
		with data.consentledger.config.inbound.ignore_words as ["JETZT"]
	a == "opt_out"
	act("stop jetzt") == "review"
}

# A message that looks like an opt-out but is no keyword goes to a person;
# only the matched phrase or word is kept.

test_review_opt_out_lookalikes if {
	all_map(["keine Werbung mehr", "Bitte keine Werbung!", "please stop texting me", "Don't text me again", "remove me from your list", "Ich widerspreche der Nutzung meiner Daten"], "review")
	kw("keine Werbung mehr") == "KEINE WERBUNG"
	kw("please stop texting me") == "STOP"
	kw("Don't text me again") == "DONT TEXT"
	kw("Ich widerspreche der Nutzung meiner Daten") == "WIDERSPRECHE"
}

test_review_never_returns_the_message if {
	k := kw("please stop texting me about the offer for Anna Schmidt")
	k == "STOP"
	not contains(k, "ANNA")
}

test_keyword_wins_over_review if {
	act("stop") == "opt_out"
	act("unsubscribe please") == "opt_out"
}

test_review_due_hours_from_data if {
	r := inbound.result with input as {"text": "keine Werbung"}
	r.action == "review"
	r.review_due_hours == 24
	r2 := inbound.result with input as {"text": "keine Werbung"}
		with data.consentledger.config.inbound.review.due_hours as 4
	r2.review_due_hours == 4
}

# ---------------------------------------------------------------------------
# Scope: STOP withdraws the channel's consent; a keyword configured as an
# objection is an objection to all marketing (Art. 21(3)).

test_stop_is_channel_wide_by_default if {
	r := inbound.result with input as {"text": "STOP"}
	r.scope == "channel"
	r.purposes == []
}

test_objection_keyword if {
	r := inbound.result with input as {"text": "Widerspruch!"}
		with data.consentledger.config.inbound.keywords.de.opt_out as ["WIDERSPRUCH"]
		with data.consentledger.config.inbound.objection_keywords as ["WIDERSPRUCH"]
	r.action == "opt_out"
	r.scope == "all_marketing"
	r.keyword == "WIDERSPRUCH"
}

# ---------------------------------------------------------------------------
# WhatsApp's "Stop promotions" button (user_preferences webhook).

test_whatsapp_stop_promotions_signal if {
	r := inbound.result with input as {"text": "", "signal": "whatsapp_stop_promotions"}
	r.action == "opt_out"
	r.purposes == ["marketing"]
	r.scope == "channel"
	r.keyword == ""
	r2 := inbound.result with input as {"text": "", "signal": "whatsapp_stop_promotions"}
		with data.consentledger.config.marketing_purposes as ["marketing", "newsletter"]
	r2.purposes == ["marketing", "newsletter"]
}

test_unknown_signal_is_none if {
	act_sig := inbound.action with input as {"text": "", "signal": "something_else"}
	act_sig == "none"
}

# ---------------------------------------------------------------------------
# HELP: the reply from the template and the server's contact data, no
# advertising.

contact := {
	"sender_name": "Example Shop GmbH",
	"support_contact": "support@example.com, +49 30 1234567",
	"opt_out": "reply STOP or visit example.com/prefs",
	"privacy_notice_url": "https://example.com/privacy",
	"dpo_contact": "dpo@example.com",
}

test_help_reply_from_template if {
	r := inbound.result with input as {"text": "HELP", "contact": contact}
	r.action == "help"
	r.reply == concat("\n", [
		"Example Shop GmbH",
		"Help: support@example.com, +49 30 1234567",
		"To stop these messages: reply STOP or visit example.com/prefs",
		"Privacy notice: https://example.com/privacy",
		"Data protection officer: dpo@example.com",
	])
}

test_help_reply_leaves_out_missing_fields if {
	r := inbound.result with input as {"text": "hilfe", "contact": {"sender_name": "Shop"}}
	r.reply == "Shop\nTo stop these messages: reply STOP"
}

test_help_reply_contact_point_not_labelled_dpo if {
	r := inbound.result with input as {"text": "HELP", "contact": {"sender_name": "Shop", "privacy_contact": "Privacy team, privacy@example.com"}}
	r.reply == "Shop\nTo stop these messages: reply STOP\nData protection contact: Privacy team, privacy@example.com"
	not contains(r.reply, "officer")
}

test_reply_only_for_help if {
	r := inbound.result with input as {"text": "STOP", "contact": contact}
	r.reply == ""
}
