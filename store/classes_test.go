package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func classCtx(c Class) context.Context { return WithClass(context.Background(), c) }

// acquireAsync starts an acquisition and reports its result on the
// returned channel.
func acquireAsync(g *gate, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := g.acquire(ctx)
		ch <- err
	}()
	return ch
}

func waitWaiting(t *testing.T, g *gate, c Class, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return g.stats()[c].Waiting == n }, 5*time.Second, time.Millisecond)
}

func TestGateKeepsConnectionsForInteractiveWork(t *testing.T) {
	g := newGate(8, ClassLimits{})
	// Every other class takes all it may, with more waiting behind.
	for _, c := range []Class{Export, Export, Background, Background, Ingest, Ingest} {
		_, err := g.acquire(classCtx(c))
		require.NoError(t, err)
	}
	var queued []<-chan error
	for range 5 {
		queued = append(queued, acquireAsync(g, classCtx(Export)))
	}
	waitWaiting(t, g, Export, 5)
	// Two connections are left, and only interactive work gets them.
	for range 2 {
		ctx, cancel := context.WithTimeout(classCtx(Interactive), 5*time.Second)
		_, err := g.acquire(ctx)
		cancel()
		require.NoError(t, err)
	}
	require.Equal(t, 2, g.stats()[Export].InUse, "no export got past its cap")
	for _, q := range queued {
		select {
		case err := <-q:
			t.Fatalf("an export beyond the cap got a connection (err %v)", err)
		default:
		}
	}
}

func TestGateServesInteractiveWaitersFirst(t *testing.T) {
	g := newGate(2, ClassLimits{Export: 2})
	for range 2 {
		_, err := g.acquire(classCtx(Export))
		require.NoError(t, err)
	}
	exp := acquireAsync(g, classCtx(Export))
	waitWaiting(t, g, Export, 1)
	inter := acquireAsync(g, classCtx(Interactive))
	waitWaiting(t, g, Interactive, 1)

	g.release(Export)
	require.NoError(t, <-inter, "the freed connection goes to the interactive waiter")
	select {
	case <-exp:
		t.Fatal("the export waiter was served before the interactive one")
	case <-time.After(20 * time.Millisecond):
	}
	g.release(Export)
	require.NoError(t, <-exp)
}

func TestGateIsFirstComeFirstServedWithinAClass(t *testing.T) {
	g := newGate(1, ClassLimits{})
	_, err := g.acquire(classCtx(Background))
	require.NoError(t, err)
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.acquire(classCtx(Background))
			require.NoError(t, err)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			g.release(Background)
		}()
		waitWaiting(t, g, Background, i+1)
	}
	g.release(Background)
	wg.Wait()
	require.Equal(t, []int{0, 1, 2, 3, 4}, order)
}

func TestGateCancelledWaiterLeavesNoTrace(t *testing.T) {
	g := newGate(1, ClassLimits{})
	_, err := g.acquire(classCtx(Interactive))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(classCtx(Export))
	w := acquireAsync(g, ctx)
	waitWaiting(t, g, Export, 1)
	cancel()
	require.ErrorIs(t, <-w, context.Canceled)
	require.Equal(t, 0, g.stats()[Export].Waiting)
	g.release(Interactive)
	st := g.stats()
	require.Equal(t, 0, st[Interactive].InUse+st[Export].InUse, "the slot is free again")
	_, err = g.acquire(classCtx(Export))
	require.NoError(t, err)
}

func TestGateUnlimitedLetsAnyClassTakeEverything(t *testing.T) {
	g := newGate(4, ClassLimits{Unlimited: true})
	for range 4 {
		ctx, cancel := context.WithTimeout(classCtx(Export), time.Second)
		_, err := g.acquire(ctx)
		cancel()
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(classCtx(Interactive), 20*time.Millisecond)
	defer cancel()
	_, err := g.acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "exports took every connection")
}

func TestClassOf(t *testing.T) {
	require.Equal(t, Interactive, ClassOf(context.Background()))
	require.Equal(t, Export, ClassOf(WithClass(context.Background(), Export)))
	require.Equal(t, "background", Background.String())
}
