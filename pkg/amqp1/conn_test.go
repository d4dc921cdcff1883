package amqp1

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func checkPlain(_ context.Context, r *SASLRequest) error {
	if r.Mechanism == SASLPlain && r.Password != "SharedAccessSignature sr=hub&sig=x" {
		return errors.New("bad token")
	}
	return nil
}

func TestSASLNegotiation(t *testing.T) {
	sasl := &SASLOptions{Authenticate: checkPlain}
	tests := []struct {
		name     string
		opts     *ConnOptions
		client   amqp.SASLType
		wantErr  bool
		wantMech string
		wantUser string
	}{
		{name: "anonymous", opts: &ConnOptions{SASL: sasl}, client: amqp.SASLTypeAnonymous(), wantMech: SASLAnonymous, wantUser: "anonymous"},
		{name: "plain right password", opts: &ConnOptions{SASL: sasl},
			client: amqp.SASLTypePlain("iothubowner@sas.root.hub", "SharedAccessSignature sr=hub&sig=x"), wantMech: SASLPlain, wantUser: "iothubowner@sas.root.hub"},
		{name: "plain wrong password", opts: &ConnOptions{SASL: sasl},
			client: amqp.SASLTypePlain("iothubowner@sas.root.hub", "wrong"), wantErr: true},
		{name: "mechanism not offered", opts: &ConnOptions{SASL: &SASLOptions{Mechanisms: []string{SASLPlain}}},
			client: amqp.SASLTypeAnonymous(), wantErr: true},
		{name: "no sasl, server without sasl", opts: nil},
		{name: "no sasl allowed", opts: &ConnOptions{SASL: sasl, AllowNoSASL: true}},
		{name: "no sasl refused", opts: &ConnOptions{SASL: sasl}, wantErr: true},
		{name: "sasl offered to server without sasl", opts: &ConnOptions{}, client: amqp.SASLTypeAnonymous(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			opts := &ConnOptions{}
			if tt.opts != nil {
				*opts = *tt.opts
			}
			opts.NewHandler = rec.newHandler
			c, s, err := pipeClient(t, opts, &amqp.ConnOptions{SASLType: tt.client})
			if tt.wantErr {
				if err == nil {
					t.Fatal("amqp.NewConn succeeded; want an error")
				}
				if serr := s.wait(t); serr == nil {
					t.Fatal("Serve returned nil; want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("amqp.NewConn: %v", err)
			}
			sc := rec.nextConn(t)
			if tt.wantMech == "" {
				if sc.SASL() != nil {
					t.Errorf("SASL() = %v; want nil", sc.SASL())
				}
			} else if sc.SASL() == nil || sc.SASL().Mechanism != tt.wantMech || sc.SASL().Identity != tt.wantUser {
				t.Errorf("SASL() = %v; want mechanism %s identity %q", sc.SASL(), tt.wantMech, tt.wantUser)
			}
			closeClient(t, c)
			if err := s.wait(t); err != nil {
				t.Fatalf("Serve = %v; want nil after a clean close", err)
			}
		})
	}
}

func TestSASLAuthErrorWrapsErrAuth(t *testing.T) {
	_, s, err := pipeClient(t, &ConnOptions{SASL: &SASLOptions{Authenticate: checkPlain}},
		&amqp.ConnOptions{SASLType: amqp.SASLTypePlain("u", "bad")})
	if err == nil {
		t.Fatal("NewConn succeeded with a bad password")
	}
	if serr := s.wait(t); !errors.Is(serr, ErrAuth) {
		t.Fatalf("Serve = %v; want ErrAuth", serr)
	}
}

func TestSASLRequestRedactsPassword(t *testing.T) {
	r := &SASLRequest{Mechanism: "PLAIN", Identity: "u", Password: "SharedAccessSignature sig=secret"}
	for _, s := range []string{r.String(), fmt.Sprint(r), r.LogValue().String()} {
		if containsFold(s, "secret") {
			t.Errorf("formatted SASLRequest %q contains the password", s)
		}
	}
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestOpenDetails(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler, ContainerID: "hub"}, &amqp.ConnOptions{
		ContainerID: "client-1", HostName: "myhub.azure-devices.net",
		Properties: map[string]any{"com.microsoft:client-version": "test/1.0"},
	})
	sc := rec.nextConn(t)
	if sc.RemoteContainerID() != "client-1" || sc.Hostname() != "myhub.azure-devices.net" {
		t.Errorf("RemoteContainerID, Hostname = %q, %q", sc.RemoteContainerID(), sc.Hostname())
	}
	if got := sc.Properties()["com.microsoft:client-version"]; got != "test/1.0" {
		t.Errorf("Properties()[client-version] = %v; want test/1.0", got)
	}
	_ = c
}

func TestTLS(t *testing.T) {
	rec := newRecorder()
	addr, cliTLS, results := tlsServer(t, &ConnOptions{NewHandler: rec.newHandler,
		SASL: &SASLOptions{Authenticate: checkPlain}, AllowNoSASL: true})
	tests := []struct {
		name string
		sasl amqp.SASLType
	}{
		{"plain", amqp.SASLTypePlain("u", "SharedAccessSignature sr=hub&sig=x")},
		{"anonymous", amqp.SASLTypeAnonymous()},
		{"no sasl", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, err := amqp.Dial(ctx, "amqps://"+addr, &amqp.ConnOptions{TLSConfig: cliTLS, SASLType: tt.sasl})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			sess := mustSession(t, c)
			snd, err := sess.NewSender(ctx, "/messages/devicebound", nil)
			if err != nil {
				t.Fatalf("NewSender: %v", err)
			}
			l := rec.nextLink(t)
			rec.nextConn(t)
			go func() {
				d, err := l.Receive(ctx)
				if err == nil {
					_ = d.Accept()
				}
			}()
			if err := snd.Send(ctx, amqp.NewMessage([]byte("over tls")), nil); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case err := <-results:
				if err != nil {
					t.Fatalf("Serve = %v; want nil", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("Serve did not return")
			}
		})
	}
}

func TestServerCloseSeenByClient(t *testing.T) {
	rec := newRecorder()
	c, s := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	sc := rec.nextConn(t)
	closeErr := &Error{Condition: ErrCondConnectionForced, Description: "hub restarting"}
	if err := sc.Close(closeErr); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("client did not see the close")
	}
	var ce *amqp.ConnError
	if err := c.Err(); !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != amqp.ErrCondConnectionForced {
		t.Fatalf("client Err() = %v; want *amqp.ConnError with amqp:connection:forced", err)
	}
	var sce *ConnError
	if err := s.wait(t); !errors.As(err, &sce) || sce.LocalErr == nil || sce.LocalErr.Condition != ErrCondConnectionForced {
		t.Fatalf("Serve = %v; want *ConnError with LocalErr forced", err)
	}
	if err := sc.Err(); err == nil {
		t.Fatal("Conn.Err() = nil after close")
	}
	select {
	case <-sc.Context().Done():
	default:
		t.Fatal("Conn.Context() not done after close")
	}
}

func TestServeContextCancel(t *testing.T) {
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli, srv := netPipe()
	s := serveBackground(ctx, srv, &ConnOptions{NewHandler: rec.newHandler})
	c, err := amqp.NewConn(testCtx(t), cli, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec.nextConn(t)
	cancel()
	if err := s.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after cancel = %v; want context.Canceled", err)
	}
	<-c.Done()
}
