// kuberay-submit prints, as JSON {"command": [...], "args": [...]}, the submitter container command
// that KubeRay's own code builds for a RayJob read as JSON on stdin (K8sJobMode): the very
// bash line the submitter pod runs. The tests use it to check that no user string in a rendered
// RayJob is altered by that shell. Arguments: the dashboard URL and the submission id KubeRay
// would have put into the RayJob's status.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"github.com/ray-project/kuberay/ray-operator/controllers/ray/common"
	"github.com/ray-project/kuberay/ray-operator/controllers/ray/utils"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kuberay-submit DASHBOARD_URL SUBMISSION_ID < rayjob.json")
		os.Exit(2)
	}
	var job rayv1.RayJob
	if err := json.NewDecoder(os.Stdin).Decode(&job); err != nil {
		fmt.Fprintln(os.Stderr, "kuberay-submit: reading the RayJob:", err)
		os.Exit(1)
	}
	job.Status.DashboardURL = os.Args[1]
	job.Status.JobId = os.Args[2]
	cmd, err := common.BuildJobSubmitCommand(&job, rayv1.K8sJobMode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuberay-submit:", err)
		os.Exit(1)
	}
	// As the RayJob controller configures the submitter container (configureSubmitterContainer).
	out := map[string][]string{"command": utils.GetContainerCommand([]string{"e"}), "args": {strings.Join(cmd, " ")}}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
