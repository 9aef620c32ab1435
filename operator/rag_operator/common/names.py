"""Names shared by the CRD, the renderer and the controller: one place, so they cannot drift."""

from __future__ import annotations

GROUP = "rag.finetune.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RagFinetuneJob"
PLURAL = "ragfinetunejobs"
SINGULAR = "ragfinetunejob"
SHORT_NAMES = ["rfj"]
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"

RAY_GROUP = "ray.io"
RAY_VERSION = "v1"
RAYJOB_PLURAL = "rayjobs"

OPERATOR_NAME = "rag-finetune-operator"

#: Labels on everything we render; the RayJob watch selects on MANAGED_BY.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = f"{GROUP}/job"
LABEL_GROUP = f"{GROUP}/group"
#: The pod volume of spec.storage (a user's pod override may not reuse the name).
STORAGE_VOLUME = "rag-storage"
#: Annotation on the RayJob holding the normalised CR spec it was rendered from, so a later
#: spec change is compared with what is really running (not with kopf's last-seen spec).
ANNOTATION_APPLIED_SPEC = f"{GROUP}/applied-spec"

#: Kueue's label naming the LocalQueue of a job (KubeRay's RayJob is one of Kueue's integrations).
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"

#: KubeRay appends 6 characters to a RayJob name for its RayCluster, whose name is capped at 53.
MAX_RAYJOB_NAME_LENGTH = 47


def rayjob_name(job_name: str) -> str:
    """The RayJob of a RagFinetuneJob has the same name: deterministic, so a restart finds it."""
    return job_name


# --- RagRetrievalCluster: a long-lived RayCluster whose retrieval actors many jobs share -------------

RRC_KIND = "RagRetrievalCluster"
RRC_PLURAL = "ragretrievalclusters"
RRC_SINGULAR = "ragretrievalcluster"
RRC_SHORT_NAMES = ["rrc"]
RRC_CRD_NAME = f"{RRC_PLURAL}.{GROUP}"
RRC_CRD_FILENAME = f"{GROUP}_{RRC_PLURAL}.yaml"
RAYCLUSTER_PLURAL = "rayclusters"
#: Label on the RayCluster and the service RayJob: which RagRetrievalCluster they belong to.
LABEL_RETRIEVAL_CLUSTER = f"{GROUP}/retrieval-cluster"
#: kopf's finalizer: a RagRetrievalCluster stays until no unfinished job references it.
FINALIZER = f"{GROUP}/in-use-protection"
#: KubeRay's clusterSelector key: the RayCluster a RayJob runs on.
RAY_CLUSTER_SELECTOR_KEY = "ray.io/cluster"
SERVICE_SUFFIX = "-retrieval-service"
#: The service RayJob `<name>-retrieval-service` must pass KubeRay's 47-character RayJob limit.
MAX_RRC_NAME_LENGTH = MAX_RAYJOB_NAME_LENGTH - len(SERVICE_SUFFIX)


def raycluster_name(rrc_name: str) -> str:
    """The RayCluster of a RagRetrievalCluster has the same name (jobs select it by that name)."""
    return rrc_name


def service_rayjob_name(rrc_name: str) -> str:
    """The supervisor RayJob that starts and health-checks the retrieval actors."""
    return f"{rrc_name}{SERVICE_SUFFIX}"


def resource_labels(app: str, instance: str, component: str, owner_label: str) -> dict[str, str]:
    """The labels on everything one of our resources renders: the app.kubernetes.io set plus
    `owner_label: instance`, which selects a resource's objects (its pods among them)."""
    return {
        LABEL_NAME: app,
        LABEL_INSTANCE: instance,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: OPERATOR_NAME,
        owner_label: instance,
    }
