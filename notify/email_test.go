package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// mailbox is a local SMTP server that keeps what it receives. With a
// user, it offers AUTH PLAIN (allowed without TLS: the test runs on the
// loopback address) and refuses mail from unauthenticated sessions.
type mailbox struct {
	user, pass string
	// reject answers RCPT TO for these addresses with the error given.
	reject map[string]*smtp.SMTPError

	mu    sync.Mutex
	mails []receivedMail
	addr  string
}

type receivedMail struct {
	from     string
	to       []string
	authUser string
	data     []byte
}

func startMailbox(t *testing.T, mb *mailbox) *mailbox {
	t.Helper()
	srv := smtp.NewServer(mb)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mb.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return mb
}

func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }

func (mb *mailbox) received() []receivedMail {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]receivedMail(nil), mb.mails...)
}

type mailSession struct {
	mb   *mailbox
	user string
	cur  receivedMail
}

func (s *mailSession) AuthMechanisms() []string {
	if s.mb.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mailSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || s.mb.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.mb.user || password != s.mb.pass {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.mb.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = receivedMail{from: from, authUser: s.user}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.mb.reject[to]; e != nil {
		return e
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.mb.mu.Lock()
	s.mb.mails = append(s.mb.mails, s.cur)
	s.mb.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.cur = receivedMail{} }
func (s *mailSession) Logout() error { return nil }

// parseMail reads a received mail: its headers and its decoded text.
func parseMail(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	require.NoError(t, err)
	return msg, strings.ReplaceAll(string(b), "\r\n", "\n")
}

func decodedHeader(t *testing.T, msg *mail.Message, name string) string {
	t.Helper()
	v, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get(name))
	require.NoError(t, err)
	return v
}

func TestEmailDelivers(t *testing.T) {
	mb := startMailbox(t, &mailbox{})
	e, err := NewEmail("smtp://"+mb.addr, "alerts@example.com", "ops@example.com")
	require.NoError(t, err)
	require.Equal(t, "email", e.Name())

	m := alert("alert-error-rate-7")
	m.Text = "The error rate of /api/users/:id was 12.5 % over the last 30 minutes.\nThreshold: 10 % — check the deploy of 10:05."
	require.NoError(t, e.Deliver(context.Background(), m))

	got := mb.received()
	require.Len(t, got, 1)
	require.Equal(t, "alerts@example.com", got[0].from)
	require.Equal(t, []string{"ops@example.com"}, got[0].to)
	msg, text := parseMail(t, got[0].data)
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	require.NoError(t, err)
	require.Equal(t, "alerts@example.com", from.Address)
	to, err := mail.ParseAddressList(msg.Header.Get("To"))
	require.NoError(t, err)
	require.Len(t, to, 1)
	require.Equal(t, "ops@example.com", to[0].Address)
	require.Equal(t, "[critical] Error rate 12.5% on /api/users/:id", decodedHeader(t, msg, "Subject"))
	require.Equal(t, "<alert-error-rate-7@apimeter>", msg.Header.Get("Message-ID"))
	require.Equal(t, "alert-error-rate-7", msg.Header.Get("X-Apimeter-Idempotency-Key"))
	require.Equal(t, "auto-generated", msg.Header.Get("Auto-Submitted"))
	require.True(t, strings.HasPrefix(msg.Header.Get("Content-Type"), "text/plain"), msg.Header.Get("Content-Type"))
	require.Equal(t, m.Text, strings.TrimRight(text, "\n"))

	// A second attempt of the same notification carries the same
	// Message-ID, so the receiving side can drop it.
	require.NoError(t, e.Deliver(context.Background(), m))
	got = mb.received()
	require.Len(t, got, 2)
	again, _ := parseMail(t, got[1].data)
	require.Equal(t, "<alert-error-rate-7@apimeter>", again.Header.Get("Message-ID"))
}

func TestEmailAuthPlain(t *testing.T) {
	mb := startMailbox(t, &mailbox{user: "alerts", pass: "p@ss w0rd"})
	url := "smtp://alerts:p%40ss%20w0rd@" + mb.addr
	e, err := NewEmail(url, "alerts@example.com", "ops@example.com, oncall@example.com")
	require.NoError(t, err)
	require.NotContains(t, e.String(), "w0rd")
	require.NoError(t, e.Deliver(context.Background(), alert("k-auth")))
	got := mb.received()
	require.Len(t, got, 1)
	require.Equal(t, "alerts", got[0].authUser)
	require.Equal(t, []string{"ops@example.com", "oncall@example.com"}, got[0].to)

	// A wrong password is a 535: final.
	bad, err := NewEmail("smtp://alerts:wrong-secret@"+mb.addr, "alerts@example.com", "ops@example.com")
	require.NoError(t, err)
	err = bad.Deliver(context.Background(), alert("k-auth-bad"))
	require.Error(t, err)
	require.True(t, IsPermanent(err), "%v", err)
	require.NotContains(t, err.Error(), "wrong-secret")

	// Without credentials the server refuses the sender: a 5xx, final.
	anon, err := NewEmail("smtp://"+mb.addr, "alerts@example.com", "ops@example.com")
	require.NoError(t, err)
	err = anon.Deliver(context.Background(), alert("k-auth-none"))
	require.Error(t, err)
	require.True(t, IsPermanent(err), "%v", err)
	require.Len(t, mb.received(), 1)
}

func TestEmailRecipientErrors(t *testing.T) {
	mb := startMailbox(t, &mailbox{reject: map[string]*smtp.SMTPError{
		"nobody@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"full@example.com":   {Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full, try later"},
	}})
	e, err := NewEmail("smtp://"+mb.addr, "alerts@example.com", "nobody@example.com")
	require.NoError(t, err)
	err = e.Deliver(context.Background(), alert("k-550"))
	require.Error(t, err)
	require.True(t, IsPermanent(err), "550 is final: %v", err)

	e, err = NewEmail("smtp://"+mb.addr, "alerts@example.com", "full@example.com")
	require.NoError(t, err)
	err = e.Deliver(context.Background(), alert("k-452"))
	require.Error(t, err)
	require.False(t, IsPermanent(err), "452 is retried: %v", err)

	// Nothing listens: retried.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	e, err = NewEmail("smtp://"+addr, "alerts@example.com", "ops@example.com")
	require.NoError(t, err)
	err = e.Deliver(context.Background(), alert("k-down"))
	require.Error(t, err)
	require.False(t, IsPermanent(err), "%v", err)
	require.Empty(t, mb.received())
}

func TestEmailThroughDispatcher(t *testing.T) {
	mb := startMailbox(t, &mailbox{})
	e, err := NewEmail("smtp://"+mb.addr, "", "ops@example.com")
	require.NoError(t, err)
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, "apimeter@"+host, e.From, "the default sender")

	log := NewMemoryLog()
	d, err := NewDispatcher(DispatcherConfig{Channels: []Channel{e}, Deliveries: log, Sleep: (&sleeper{}).Sleep, Now: fixedNow, Log: quietLogger()})
	require.NoError(t, err)
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-mail")))
	flush(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-mail")))
	flush(t, d)
	require.Len(t, mb.received(), 1, "a delivered key is not sent again")
	require.Equal(t, []string{"queued/0", "delivered/1"}, statuses(log.Deliveries(), "k-mail", "email"))
}

func TestNewEmailValidates(t *testing.T) {
	for _, tc := range []struct{ url, from, to, want string }{
		{"", "a@example.com", "b@example.com", "SMTP_URL is empty"},
		{"http://mail.example.com", "a@example.com", "b@example.com", `scheme "http"`},
		{"smtp://", "a@example.com", "b@example.com", "no host"},
		{"smtp://mail.example.com:99999", "a@example.com", "b@example.com", "port"},
		{"smtp://mail.example.com:abc", "a@example.com", "b@example.com", ""},
		{"smtp://:hunter2@mail.example.com", "a@example.com", "b@example.com", "password without a user"},
		{"smtp://mail.example.com/path", "a@example.com", "b@example.com", "path"},
		{"smtp://mail.example.com?tls=none", "a@example.com", "b@example.com", "query"},
		{"smtp://mail.example.com", "not an address", "b@example.com", "sender"},
		{"smtp://mail.example.com", "a@example.com", "", "no recipient"},
		{"smtp://mail.example.com", "a@example.com", "ops at example", "recipient"},
	} {
		_, err := NewEmail(tc.url, tc.from, tc.to)
		require.Error(t, err, "%+v", tc)
		require.Contains(t, err.Error(), tc.want, "%+v", tc)
		require.NotContains(t, err.Error(), "hunter2")
	}
	for _, ok := range []string{"smtp://mail.example.com", "smtps://u:p@mail.example.com:2465", "smtp://[::1]:25", "smtp://mail.example.com/"} {
		_, err := NewEmail(ok, "a@example.com", "b@example.com")
		require.NoError(t, err, ok)
	}
	s, err := parseSMTPURL("smtp://user:pw@mail.example.com")
	require.NoError(t, err)
	require.Equal(t, smtpServer{host: "mail.example.com", port: 587, user: "user", pass: "pw"}, s)
	s, err = parseSMTPURL("smtps://mail.example.com")
	require.NoError(t, err)
	require.Equal(t, smtpServer{host: "mail.example.com", port: 465, implicitTLS: true}, s)

	e := &Email{URL: "smtp://user:hunter2@mail.example.com", To: "ops@example.com"}
	require.NotContains(t, e.String(), "hunter2")
	require.NotContains(t, fmt.Sprint(e.LogValue()), "hunter2")
}

func TestMessageID(t *testing.T) {
	require.Equal(t, "<alert.error_rate-2026-11-27T10@apimeter>", MessageID("alert.error_rate-2026-11-27T10"))
	// Not a dot-atom: the key's hash stands in, the same every time.
	odd := MessageID("alert: error rate <high>")
	require.Equal(t, odd, MessageID("alert: error rate <high>"))
	require.Regexp(t, `^<[0-9a-f]{32}@apimeter>$`, odd)
	require.NotEqual(t, odd, MessageID("alert: error rate <low>"))
	require.Regexp(t, `^<[0-9a-f]{32}@apimeter>$`, MessageID("a..b"))
}

func TestEmailSubject(t *testing.T) {
	require.Equal(t, "[warning] Quota 80% used", EmailSubject(Message{Severity: "warning", Subject: "Quota 80% used"}))
	require.Equal(t, "[major] two lines", EmailSubject(Message{Severity: "major", Subject: "two\r\nlines"}))
	require.Equal(t, "plain", EmailSubject(Message{Subject: "plain"}))
}
