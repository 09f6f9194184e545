package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/backup"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func init() {
	commands["subject"] = command{run: runSubject, summary: "subject reveal: show a subject's pseudonym, salt and commitment (admin)"}
	commands["backup"] = command{run: runBackup, summary: "write an online backup through the server (admin)"}
	commands["restore"] = command{run: runRestore, summary: "restore a backup into an empty data directory (offline)"}
}

const revealUsage = "usage: consentledger subject reveal (--phone N | --email E | --external-id X) [--server URL] [--token-file FILE]"

func runSubject(args []string) int {
	if len(args) == 0 || args[0] != "reveal" {
		return errorf(2, revealUsage, "unknown or missing subject subcommand")
	}
	fs := newFlagSet("subject reveal")
	phone := fs.String("phone", "", "phone number in international format")
	email := fs.String("email", "", "e-mail address")
	ext := fs.String("external-id", "", "the sender's external id")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) > 0 {
		return usageError(revealUsage, err, pos)
	}
	var s *pb.Subject
	n := 0
	for _, v := range []struct {
		val string
		sub *pb.Subject
	}{
		{*phone, &pb.Subject{Id: &pb.Subject_Phone{Phone: *phone}}},
		{*email, &pb.Subject{Id: &pb.Subject_Email{Email: *email}}},
		{*ext, &pb.Subject{Id: &pb.Subject_ExternalId{ExternalId: *ext}}},
	} {
		if v.val != "" {
			s, n = v.sub, n+1
		}
	}
	if n != 1 {
		return errorf(2, revealUsage, "give exactly one of --phone, --email, --external-id")
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, revealUsage, "%v", err)
	}
	r, err := c.Admin.RevealSubject(context.Background(), connect.NewRequest(&pb.RevealSubjectRequest{Subject: s}))
	if err != nil {
		return rpcError(err)
	}
	fmt.Fprintf(stdout, "subject_id: %s\nsalt:       %s\ncommitment: %s\n", r.Msg.SubjectId, hex.EncodeToString(r.Msg.Salt), hex.EncodeToString(r.Msg.Commitment))
	fmt.Fprintf(stdout, "check:      SHA-256(salt || %q) = commitment\n", r.Msg.Normalized)
	return 0
}

const backupUsage = "usage: consentledger backup -o FILE [--server URL] [--token-file FILE]"

func runBackup(args []string) int {
	fs := newFlagSet("backup")
	out := fs.String("o", "", "backup file to write")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 || *out == "" {
		return usageError(backupUsage, err, pos)
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, backupUsage, "%v", err)
	}
	var rpcErr error
	var total int
	err = writeOutput(*out, func(w io.Writer) error {
		stream, err := c.Admin.Backup(context.Background(), connect.NewRequest(&pb.BackupRequest{}))
		if err != nil {
			rpcErr = err
			return err
		}
		for stream.Receive() {
			n, err := w.Write(stream.Msg().Chunk)
			total += n
			if err != nil {
				return err
			}
		}
		rpcErr = stream.Err()
		return rpcErr
	})
	if rpcErr != nil {
		return rpcError(rpcErr)
	}
	if err != nil {
		return errorf(2, "", "write %s: %v", *out, err)
	}
	if err := os.Chmod(*out, 0o600); err != nil {
		return errorf(2, "", "%v", err)
	}
	fmt.Fprintf(stderr, "wrote a backup of %d bytes to %s (it holds the signing key: keep it safe)\n", total, *out)
	return 0
}

const restoreUsage = "usage: consentledger restore --data EMPTY_DIR FILE"

func runRestore(args []string) int {
	fs := newFlagSet("restore")
	data := fs.String("data", "", "empty directory to restore into")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 || *data == "" {
		return usageError(restoreUsage, err, pos)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return errorf(2, "", "%v", err)
	}
	defer f.Close()
	size, root, err := backup.Restore(*data, f)
	if err != nil {
		return errorf(1, "", "%v", err)
	}
	fmt.Fprintf(stdout, "restored %d entries into %s; root %s\n", size, *data, hex.EncodeToString(root))
	return 0
}
