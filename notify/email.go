package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/apimeter/apimeter/store"
)

// Default SMTP ports: submission with STARTTLS for smtp://, implicit TLS
// for smtps://.
const (
	DefaultSMTPPort  = 587
	DefaultSMTPSPort = 465
)

// Email sends messages as plain-text mail through an SMTP server
// (SMTP_URL) to OPS_ALERT_EMAIL.
//
// The URL is smtp://[user:pass@]host[:port] (STARTTLS when the server
// offers it; port 587 by default) or smtps://[user:pass@]host[:port]
// (TLS from the first byte; port 465 by default). The client
// authenticates only when the URL names a user, with the strongest
// mechanism both sides know; PLAIN and LOGIN are used only over TLS or to
// a server on the loopback address, so a password never crosses the
// network in the clear.
//
// Every mail of one notification has the same Message-ID (MessageID of
// the idempotency key) and an X-Apimeter-Idempotency-Key header, so a
// mail server or a filter can drop repeats. The subject is the message's,
// prefixed with its severity in brackets: "[critical] …".
type Email struct {
	// URL is SMTP_URL. Its password never appears in logs or errors.
	URL string
	// From is the sender. Default: apimeter@ and the host's name.
	From string
	// To is the recipient, or several separated by commas.
	To string
	// Label is the channel's name. Default: "email".
	Label string
	// Timeout bounds connecting and each SMTP exchange. Default: 30 s.
	Timeout time.Duration
}

// NewEmail checks an SMTP URL and the addresses and returns the channel.
func NewEmail(rawURL, from, to string) (*Email, error) {
	var errs []error
	if _, err := parseSMTPURL(rawURL); err != nil {
		errs = append(errs, err)
	}
	if from == "" {
		from = DefaultFrom()
	}
	if _, err := mail.ParseAddress(from); err != nil {
		errs = append(errs, fmt.Errorf("notify: sender %q is not an e-mail address", from))
	}
	if strings.TrimSpace(to) == "" {
		errs = append(errs, errors.New("notify: no recipient for alert mail (OPS_ALERT_EMAIL)"))
	} else if _, err := mail.ParseAddressList(to); err != nil {
		errs = append(errs, fmt.Errorf("notify: recipient %q is not an e-mail address or a comma-separated list of them", to))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Email{URL: rawURL, From: from, To: to}, nil
}

// DefaultFrom is the sender when none is configured: apimeter@ and the
// host's name.
func DefaultFrom() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return "apimeter@" + h
}

// smtpServer is a parsed SMTP_URL.
type smtpServer struct {
	host        string
	port        int
	implicitTLS bool
	user, pass  string
}

func parseSMTPURL(raw string) (smtpServer, error) {
	var s smtpServer
	if raw == "" {
		return s, errors.New("notify: no SMTP server (SMTP_URL is empty)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the URL, password included.
		return s, errors.New("notify: SMTP_URL is not a valid URL")
	}
	red := store.RedactURL(raw)
	switch u.Scheme {
	case "smtp":
		s.port = DefaultSMTPPort
	case "smtps":
		s.implicitTLS, s.port = true, DefaultSMTPSPort
	default:
		return s, fmt.Errorf("notify: SMTP_URL %s: scheme %q, want smtp or smtps", red, u.Scheme)
	}
	s.host = u.Hostname()
	if s.host == "" {
		return s, fmt.Errorf("notify: SMTP_URL %s: no host", red)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("notify: SMTP_URL %s: port %q, want 1 to 65535", red, p)
		}
		s.port = n
	}
	if u.Path != "" && u.Path != "/" {
		return s, fmt.Errorf("notify: SMTP_URL %s: a path is not supported", red)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return s, fmt.Errorf("notify: SMTP_URL %s: query parameters are not supported", red)
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" && s.pass != "" {
			return s, fmt.Errorf("notify: SMTP_URL %s: a password without a user name", red)
		}
	}
	return s, nil
}

// Name implements Channel.
func (e *Email) Name() string {
	if e.Label != "" {
		return e.Label
	}
	return "email"
}

// String describes the channel without the password.
func (e *Email) String() string { return e.Name() + " " + store.RedactURL(e.URL) + " to " + e.To }

// LogValue keeps the SMTP password out of logs.
func (e *Email) LogValue() slog.Value {
	return slog.GroupValue(slog.String("channel", e.Name()), slog.String("url", store.RedactURL(e.URL)), slog.String("to", e.To))
}

// headerAutoSubmitted marks machine-sent mail (RFC 3834), so
// auto-responders stay quiet.
const headerAutoSubmitted = "Auto-Submitted"

// EmailSubject is the subject of a message's mail: its severity in
// brackets, then its subject.
func EmailSubject(m Message) string {
	subj := oneLine(m.Subject)
	if m.Severity == "" {
		return subj
	}
	return "[" + m.Severity + "] " + subj
}

// MessageID is the Message-ID of every mail of the notification with
// idempotency key key: "<key@apimeter>", or, when the key is not a valid
// dot-atom, "<" + the first 32 hex digits of its SHA-256 + "@apimeter>".
func MessageID(key string) string { return "<" + messageIDValue(key) + ">" }

func messageIDValue(key string) string {
	if !dotAtom(key) {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:16])
	}
	return key + "@apimeter"
}

// dotAtom reports whether s is an RFC 5322 dot-atom-text.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Deliver implements Channel: one SMTP session sending one mail.
func (e *Email) Deliver(ctx context.Context, m Message) error {
	srv, err := parseSMTPURL(e.URL)
	if err != nil {
		return Permanent(err)
	}
	msg, err := e.compose(m)
	if err != nil {
		return Permanent(err)
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithTimeout(timeout)}
	if srv.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	opts = append(opts, gomail.WithPort(srv.port))
	if srv.user != "" {
		// PLAIN and LOGIN refuse to run without TLS unless the server is
		// on the loopback address.
		opts = append(opts, gomail.WithUsername(srv.user), gomail.WithPassword(srv.pass),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	client, err := gomail.NewClient(srv.host, opts...)
	if err != nil {
		return Permanent(fmt.Errorf("email %s: %w", store.RedactURL(e.URL), err))
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		err = fmt.Errorf("email %s: %w", store.RedactURL(e.URL), err)
		if ctx.Err() == nil && permanentSMTP(err) {
			return Permanent(err)
		}
		return err
	}
	return nil
}

// compose builds the mail of a message.
func (e *Email) compose(m Message) (*gomail.Msg, error) {
	from := e.From
	if from == "" {
		from = DefaultFrom()
	}
	to, err := mail.ParseAddressList(e.To)
	if err != nil || len(to) == 0 {
		return nil, fmt.Errorf("notify: recipient %q is not an e-mail address or a comma-separated list of them", e.To)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("notify: sender %q: %w", from, err)
	}
	msg.ToMailAddress(to...)
	msg.Subject(EmailSubject(m))
	msg.SetMessageIDWithValue(messageIDValue(m.IdempotencyKey))
	msg.SetDate()
	msg.SetGenHeader(gomail.Header(HeaderIdempotencyKey), oneLine(m.IdempotencyKey))
	msg.SetGenHeader(gomail.Header(headerAutoSubmitted), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXMailer, "apimeter")
	if m.Type != "" {
		msg.SetGenHeader(gomail.Header("X-Apimeter-Type"), oneLine(m.Type))
	}
	if m.Severity != "" {
		msg.SetGenHeader(gomail.Header("X-Apimeter-Severity"), oneLine(m.Severity))
	}
	text := m.Text
	if strings.TrimSpace(text) == "" {
		text = m.Subject
	}
	msg.SetBodyString(gomail.TypeTextPlain, text)
	return msg, nil
}

// permanentSMTP reports whether an SMTP error is a 5xx reply: the server
// refused for good (unknown recipient, rejected sender, failed
// authentication), so another attempt would be refused the same way.
func permanentSMTP(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return true
	}
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code < 600
}
