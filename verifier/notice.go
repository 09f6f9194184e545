package verifier

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// NoticeFacts are the verified facts of the privacy notice the grant names
// (bundle field 5). They prove what was shown, not that it was read.
type NoticeFacts struct {
	Index         uint64    `json:"index"`
	RecordedAt    time.Time `json:"recorded_at"`
	Version       string    `json:"version"`
	Language      string    `json:"language"`
	Title         string    `json:"title"`
	Digest        string    `json:"digest"` // recomputed from the text, equal to the recorded one
	EffectiveFrom time.Time `json:"effective_from"`
}

// NoticeDigest is the digest a NoticePublished entry records: "sha256:" +
// hex of SHA-256 over its text.
func NoticeDigest(text string) string {
	h := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(h[:])
}

// includeNotice runs check 2 on bundle field 5, if present.
func (v *evidence) includeNotice() error {
	if v.b.Notice == nil {
		return nil
	}
	p, err := v.include(v.b.Notice)
	if err != nil {
		return err
	}
	v.notice = p
	return nil
}

// checkNotice checks the notice the grant names against bundle field 5 as
// part of check 4: the entry is the NoticePublished the grant names, its
// text gives its recorded digest, it covers the grant's channel and
// purposes, was in effect when consent was given, and is in the language the
// grant records. A grant that names no published notice, or an older
// bundle without field 5, is reported, not failed.
func (v *evidence) checkNotice(grant *proven) error {
	g := grant.e.GetConsentGranted()
	switch {
	case g.NoticeIndex == nil && v.notice == nil:
		v.r.NoticeNote = "The grant names no notice published in the log (recorded before notices were published, or with a free-text version): the bundle cannot show what notice was shown."
		return nil
	case g.NoticeIndex == nil:
		return failAt(CheckGrant, v.notice.index, "a notice entry", "none",
			"the bundle carries notice entry #%d, but the grant #%d names no notice", v.notice.index, grant.index)
	case v.notice == nil:
		v.r.NoticeNote = fmt.Sprintf("Not shown: the grant names notice entry #%d, which this bundle does not carry (written before bundles carried notices); the audit shows it.", *g.NoticeIndex)
		return nil
	case *g.NoticeIndex != v.notice.index:
		return failAt(CheckGrant, v.notice.index, fmt.Sprintf("notice #%d", v.notice.index), fmt.Sprintf("notice #%d", *g.NoticeIndex),
			"the bundle's notice entry is not the one the grant names")
	}
	n := v.notice.e.GetNoticePublished()
	if n == nil {
		return failAt(CheckGrant, v.notice.index, eventKind(v.notice.e), "notice_published", "the grant's notice entry is no published notice")
	}
	if got := NoticeDigest(n.Text); got != n.Digest {
		return failAt(CheckGrant, v.notice.index, got, n.Digest, "the notice's text does not give the digest recorded with it: the notice was altered before it was logged")
	}
	if n.Version != g.NoticeVersion || (g.NoticeLanguage != "" && n.Language != g.NoticeLanguage) {
		return failAt(CheckGrant, v.notice.index, n.Version+" ("+n.Language+")", g.NoticeVersion+" ("+g.NoticeLanguage+")",
			"the grant's notice version or language is not the notice entry's")
	}
	if !slices.Contains(n.Channels, g.Channel) {
		return failAt(CheckGrant, v.notice.index, channelName(g.Channel), "a channel of the notice", "the notice does not cover the grant's channel")
	}
	for _, p := range g.Purposes {
		if !slices.Contains(n.Purposes, p) {
			return failAt(CheckGrant, v.notice.index, p, strings.Join(n.Purposes, ", "), "the notice does not cover the grant's purpose %q", p)
		}
	}
	occurred := timeOf(g.OccurredAt)
	if g.OccurredAt == nil {
		occurred = timeOf(grant.e.RecordedAt)
	}
	if from := timeOf(n.EffectiveFrom); from.After(occurred) {
		return failAt(CheckGrant, v.notice.index, fmtGoTime(from), "by "+fmtGoTime(occurred), "the notice took effect after consent was given")
	}
	v.r.Notice = &NoticeFacts{
		Index: v.notice.index, RecordedAt: timeOf(v.notice.e.RecordedAt), Version: n.Version, Language: n.Language,
		Title: n.Title, Digest: n.Digest, EffectiveFrom: timeOf(n.EffectiveFrom),
	}
	return nil
}

// checkGrantNotice runs checkNotice for the grant the decision relied on.
func (v *evidence) checkGrantNotice() error {
	for _, p := range v.chain {
		if p.index == v.d.ConsentIndexes[0] && p.e.GetConsentGranted() != nil {
			return v.checkNotice(p)
		}
	}
	return nil // check 4 already failed a chain without the grant
}

// noticeText is the report's notice section.
func (r *EvidenceReport) noticeText() string {
	if n := r.Notice; n != nil {
		return fmt.Sprintf("\nPrivacy notice #%d, published %s: %q, version %s, language %s\n  digest: %s (recomputed from the text)\n  in effect from %s; it proves what was shown, not that it was read\n",
			n.Index, fmtGoTime(n.RecordedAt), n.Title, n.Version, n.Language, n.Digest, fmtGoTime(n.EffectiveFrom))
	}
	if r.NoticeNote != "" {
		return "\nPrivacy notice: " + wrap(r.NoticeNote, 78, 16, "  ")
	}
	return ""
}
