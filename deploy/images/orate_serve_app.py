"""KubeRay's Serve entry point: the application of one deployments-file entry, by name.

A RayService's serveConfigV2 names it as `import_path: orate_serve_app:build` with
`args: {service: <name>, deployments_file: /etc/orate/deployments.yaml}`; the images that can run Ray
Serve install this module beside their packages. Autoscaling and actor options in serveConfigV2 override
the ones the deployments file gives.
"""

from __future__ import annotations

from pathlib import Path

from ray.serve.deployment import Application

from shared.serving.deployments import load_deployments
from shared.serving.ray_serve import application

DEFAULT_DEPLOYMENTS_FILE = "/etc/orate/deployments.yaml"


def build(args: dict[str, str]) -> Application:
    deployments = load_deployments(Path(args.get("deployments_file", DEFAULT_DEPLOYMENTS_FILE)))
    return application(deployments.get(args["service"]), deployments)
