package config

import "reflect"

// Defaults are the values Load gives the keys a file leaves out, by YAML
// path, with "*" for any upstream's name and "[]" for any entry of a list:
// "server.address", "upstreams.*.timeout", "endpoints[].backends[].method".
// A block that exists only when written (server.cors, auth.jwt,
// endpoints[].rate_limit, ...) gets its defaults only when present; they
// are listed all the same. Values are as a file would write them: durations
// as strings ("5s"), lists as lists.
//
// Load does not read it: it is the same tables and list defaults Load
// applies, gathered for the JSON Schema of `manifold schema`.
func Defaults() map[string]any {
	out := map[string]any{}
	for k, v := range topDefaults {
		out[k] = v
	}
	for k, v := range upstreamDefaults {
		out["upstreams.*."+k] = v
	}
	// applyListDefaults fills what it finds: give it every block present
	// and empty, every list of blocks with one entry, and see what it adds.
	probe := settingsSkeleton(reflect.TypeOf(Config{}))
	applyListDefaults(probe)
	collectAdded(probe, settingsSkeleton(reflect.TypeOf(Config{})), "", out)
	return out
}

// settingsSkeleton is a settings map for struct t with every block in it present
// and empty, every list of blocks holding one empty entry and every map of
// blocks (upstreams) one empty entry named "*".
func settingsSkeleton(t reflect.Type) map[string]any {
	m := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		ft := indirectType(t.Field(i).Type)
		switch {
		case ft == durationType:
		case ft.Kind() == reflect.Struct:
			m[tag] = settingsSkeleton(ft)
		case ft.Kind() == reflect.Slice && isSettingsBlock(ft.Elem()):
			m[tag] = []any{settingsSkeleton(indirectType(ft.Elem()))}
		case ft.Kind() == reflect.Map && isSettingsBlock(ft.Elem()):
			m[tag] = map[string]any{"*": settingsSkeleton(indirectType(ft.Elem()))}
		}
	}
	return m
}

// collectAdded records in out, by YAML path, every key of filled that skel lacks.
func collectAdded(filled, skel map[string]any, path string, out map[string]any) {
	for k, v := range filled {
		p := joinPath(path, k)
		s, inSkel := skel[k]
		if !inSkel {
			out[p] = v
			continue
		}
		switch s := s.(type) {
		case map[string]any:
			if m, ok := v.(map[string]any); ok {
				collectAdded(m, s, p, out)
			}
		case []any:
			if l, ok := v.([]any); ok && len(l) == 1 {
				if m, ok := l[0].(map[string]any); ok {
					collectAdded(m, s[0].(map[string]any), p+"[]", out)
				}
			}
		}
	}
}

func indirectType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isSettingsBlock reports whether t (or what it points to) is a struct of settings.
func isSettingsBlock(t reflect.Type) bool {
	t = indirectType(t)
	return t.Kind() == reflect.Struct && t != durationType
}
