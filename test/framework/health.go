package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Kstatus is what kstatus (sigs.k8s.io/cli-utils), which Flux and kubectl's
// apply tooling use, computes for an object: its status (InProgress,
// Current, Failed, ...) and message.
func Kstatus(obj *unstructured.Unstructured) (string, string, error) {
	res, err := status.Compute(obj)
	if err != nil {
		return "", "", err
	}
	return res.Status.String(), res.Message, nil
}

// ArgoHealthScript reads the project's Argo CD health check,
// deploy/argocd/health.lua.
func ArgoHealthScript() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "argocd", "health.lua"))
	return string(b), err
}

// argoHealthStatuses are the health statuses Argo CD accepts from a check.
var argoHealthStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true}

// ArgoHealth runs a health check as Argo CD runs one, in gopher-lua (the
// interpreter Argo CD embeds): a fresh state with only the base, table,
// string and math libraries, the object as the global obj (JSON objects as
// tables, arrays as tables indexed from 1), a time limit, and the table
// the script returns read as {status, message}. A status Argo CD would not
// accept is an error.
func ArgoHealth(script string, obj map[string]any) (string, string, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", fmt.Errorf("opening the %q library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	L.SetContext(ctx)
	// The object as JSON gives it: numbers as float64, as Argo CD's are.
	raw, err := json.Marshal(obj)
	if err != nil {
		return "", "", err
	}
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return "", "", err
	}
	L.SetGlobal("obj", toLua(L, decoded))
	if err := L.DoString(script); err != nil {
		return "", "", fmt.Errorf("running the health check: %w", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the health check returned %s, not a table", L.Get(-1).Type())
	}
	st, msg := ret.RawGetString("status"), ret.RawGetString("message")
	if st.Type() != lua.LTString || !argoHealthStatuses[st.String()] {
		return "", "", fmt.Errorf("the health check returned status %q, which Argo CD does not accept", st.String())
	}
	if msg.Type() != lua.LTString && msg != lua.LNil {
		return "", "", fmt.Errorf("the health check returned a message of type %s", msg.Type())
	}
	if msg == lua.LNil {
		return st.String(), "", nil
	}
	return st.String(), msg.String(), nil
}

// toLua converts a decoded JSON value to a Lua value.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := L.NewTable()
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.RawSetString(k, toLua(L, v[k]))
		}
		return t
	}
	return lua.LString(fmt.Sprint(v))
}
