// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package deploy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifests decodes every document of a file under deploy/kubernetes
// strictly (an unknown, misspelt or repeated field is an error) into the
// k8s.io/api type its kind names.
func manifests(t *testing.T, name string) []any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s, document %d: %v", name, i+1, err)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/Pod":
			obj = &corev1.Pod{}
		case "apps/v1/DaemonSet":
			obj = &appsv1.DaemonSet{}
		default:
			t.Fatalf("%s, document %d: unexpected %s %s", name, i+1, tm.APIVersion, tm.Kind)
		}
		// As the API server decodes: field names case-sensitive, no
		// unknown or repeated field.
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s, document %d (%s): %v", name, i+1, tm.Kind, err)
		}
		strict, err := kjson.UnmarshalStrict(j, obj)
		if err := errors.Join(append(strict, err)...); err != nil {
			t.Fatalf("%s, document %d (%s): %v", name, i+1, tm.Kind, err)
		}
		out = append(out, obj)
	}
	return out
}

// checkSidecarContext checks a container's security context against
// sidecar.flags: every capability dropped, the same ones added, no
// privilege, no escalation, a read-only root, the runtime's seccomp
// profile; and that it mounts the host's cgroup trees read-only.
func checkSidecarContext(t *testing.T, where string, c corev1.Container, vols []corev1.Volume) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("%s: no security context with capabilities", where)
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, "CAP_"+string(c))
	}
	slices.Sort(add)
	if want := sidecarCaps(t); !slices.Equal(add, want) {
		t.Errorf("%s: adds %v, sidecar.flags %v", where, add, want)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: drops %v, want ALL", where, sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: privileged %v, escalation %v, read-only root %v, seccomp %v: want false, false, true, RuntimeDefault",
			where, sc.Privileged, sc.AllowPrivilegeEscalation, sc.ReadOnlyRootFilesystem, sc.SeccompProfile)
	}
	hostPaths := map[string]string{}
	for _, v := range vols {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	cgroup := false
	for _, m := range c.VolumeMounts {
		if hostPaths[m.Name] == "/sys/fs/cgroup" && m.MountPath == "/sys/fs/cgroup" {
			cgroup = m.ReadOnly
		}
	}
	if !cgroup {
		t.Errorf("%s: does not mount the host's /sys/fs/cgroup read-only at /sys/fs/cgroup", where)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()) < 0 {
		t.Errorf("%s: memory request %v, limit %v: want both, the limit above", where, c.Resources.Requests.Memory(), c.Resources.Limits.Memory())
	}
	// The agent's measured peak RSS (README, Cost: 27.7 MiB at 50
	// containers) must fit the request.
	if c.Resources.Requests.Memory().Cmp(resource.MustParse("28Mi")) < 0 || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("%s: requests %v: want at least the measured 28Mi and some CPU", where, c.Resources.Requests)
	}
}

// TestKubernetesDaemonSet decodes the DaemonSet manifest into k8s.io/api
// types and checks it against sidecar.flags and itself (no cluster is
// available to apply it).
func TestKubernetesDaemonSet(t *testing.T) {
	var ds *appsv1.DaemonSet
	var svc *corev1.Service
	for _, o := range manifests(t, "daemonset.yaml") {
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			ds = o
		case *corev1.Service:
			svc = o
		}
	}
	if ds == nil || svc == nil {
		t.Fatalf("daemonset.yaml: DaemonSet %v, Service %v: want both", ds != nil, svc != nil)
	}
	pod := ds.Spec.Template
	if !pod.Spec.HostPID || !pod.Spec.HostNetwork {
		t.Errorf("hostPID %v, hostNetwork %v: sidecar.flags has --pid=host and --network=host", pod.Spec.HostPID, pod.Spec.HostNetwork)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the DaemonSet's selector %v does not select its pods %v (%v)", ds.Spec.Selector, pod.Labels, err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want crmon alone", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	checkSidecarContext(t, "DaemonSet", c, pod.Spec.Volumes)
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, p := range []string{"/var/run/docker.sock", "/run/crmon", "/var/lib/crmon"} {
		if !mounts[p] {
			t.Errorf("DaemonSet: nothing mounted at %s (sidecar.flags, and the store's directory)", p)
		}
	}
	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "metrics" {
			port = &c.Ports[i]
		}
	}
	if port == nil || !slices.Contains(c.Args, "--web.listen-address=0.0.0.0:"+itoa(port.ContainerPort)) {
		t.Fatalf("the metrics port %v is not where the agent listens (%v)", port, c.Args)
	}
	if a := pod.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != itoa(port.ContainerPort) {
		t.Errorf("pod annotations %v: want prometheus.io/scrape and the metrics port", a)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("readiness probe %v, want GET /healthz", c.ReadinessProbe)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].TargetPort.String() != "metrics" || svc.Spec.Ports[0].Port != port.ContainerPort {
		t.Errorf("the Service %v %v does not reach the pods' metrics port", svc.Spec.Selector, svc.Spec.Ports)
	}
}

// TestKubernetesTestPod decodes the test pod with its crmon sidecar: the
// sidecar's context mirrors sidecar.flags, and both containers mount one
// volume at /run/crmon, where the control socket is.
func TestKubernetesTestPod(t *testing.T) {
	objs := manifests(t, "test-pod.yaml")
	if len(objs) != 1 {
		t.Fatalf("test-pod.yaml: %d documents, want the pod", len(objs))
	}
	pod, ok := objs[0].(*corev1.Pod)
	if !ok {
		t.Fatalf("test-pod.yaml holds a %T", objs[0])
	}
	runVol := map[string]string{}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/run/crmon" {
				runVol[c.Name] = m.Name
			}
		}
		if c.Name == "crmon" {
			checkSidecarContext(t, "test pod's crmon", c, pod.Spec.Volumes)
		}
	}
	if runVol["crmon"] == "" || runVol["crmon"] != runVol["test"] {
		t.Errorf("/run/crmon volumes %v: want one volume shared by crmon and test", runVol)
	}
	var test string
	for _, c := range pod.Spec.Containers {
		if c.Name == "test" {
			test = strings.Join(c.Args, " ")
		}
	}
	if !strings.Contains(test, "crmon session start") || !strings.Contains(test, "crmon session stop") {
		t.Errorf("the test container does not start and stop a session: %q", test)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
