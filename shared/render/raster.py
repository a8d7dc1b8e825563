"""Offscreen CPU rasterisation of triangle meshes with moderngl on Mesa's llvmpipe (EGL, no display needed).

Why moderngl: it is maintained, ships manylinux wheels, and its EGL backend renders headless on the CPU with
the stock Debian Mesa packages (libegl1, libegl-mesa0, libgl1-mesa-dri); pyrender pins PyOpenGL 3.1.0 and
needs OSMesa. Shading is smooth Lambert with one key light and an ambient term, enough for previews.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat3 view_rotation;
in vec3 in_position;
in vec3 in_normal;
out vec3 normal;
void main() {
    gl_Position = mvp * vec4(in_position, 1.0);
    normal = view_rotation * in_normal;
}
"""
_FRAGMENT_SHADER = """
#version 330
uniform vec3 color;
uniform vec3 light;
in vec3 normal;
out vec4 fragment;
void main() {
    vec3 n = normalize(normal);
    // Two-sided: a triangle seen from behind (inside of the lips, eyelids) is lit like its front.
    if (!gl_FrontFacing) n = -n;
    float diffuse = max(dot(n, light), 0.0);
    fragment = vec4(color * (0.25 + 0.75 * diffuse), 1.0);
}
"""
SKIN = (0.86, 0.70, 0.60)
BACKGROUND = (0.12, 0.12, 0.14)


class RenderError(RuntimeError):
    """No OpenGL context could be made here; the message says what to install."""


@dataclass(frozen=True)
class View:
    """Where a mesh's up and front point, in its own coordinates; the camera looks at its front."""

    up: tuple[float, float, float]
    front: tuple[float, float, float]


ANNY_VIEW = View(up=(0.0, 0.0, 1.0), front=(0.0, -1.0, 0.0))  # the open rig: +Z up, faces -Y
FLAME_VIEW = View(up=(0.0, 1.0, 0.0), front=(0.0, 0.0, 1.0))  # FLAME and SMPL-X: +Y up, face +Z


class MeshRenderer:
    """Renders one triangle topology, framed on fixed bounds, to [size, size, 3] uint8 frames.

    Use as a context manager: it owns a GL context and its buffers.
    """

    def __init__(
        self,
        faces: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        view: View,
        size: int = 256,
        fov_deg: float = 20.0,
    ) -> None:
        import moderngl

        try:
            self._ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as exc:  # glcontext raises plain Exception when EGL or Mesa is missing
            raise RenderError(
                f"no headless OpenGL context ({exc}); install libegl1 libegl-mesa0 libgl1-mesa-dri"
            ) from exc
        ctx = self._ctx
        self._faces = np.ascontiguousarray(faces, dtype=np.int32)
        self._vertex_count = int(self._faces.max()) + 1
        self._size = size
        program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        rotation, mvp = camera_matrices(bounds, view, fov_deg)
        program["mvp"].write(mvp.T.astype("f4").tobytes())
        program["view_rotation"].write(rotation.T.astype("f4").tobytes())
        program["color"].value = SKIN
        light = np.array([-0.35, 0.45, 1.0])
        program["light"].value = tuple(light / np.linalg.norm(light))
        self._positions = ctx.buffer(reserve=self._vertex_count * 12)
        self._normals = ctx.buffer(reserve=self._vertex_count * 12)
        index = ctx.buffer(self._faces.tobytes())
        self._vao = ctx.vertex_array(
            program, [(self._positions, "3f", "in_position"), (self._normals, "3f", "in_normal")], index
        )
        samples = min(4, ctx.max_samples)
        self._msaa = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((size, size), samples=samples)],
            depth_attachment=ctx.depth_renderbuffer((size, size), samples=samples),
        )
        self._resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer((size, size))])

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """vertices [V, 3] -> RGB [size, size, 3] uint8, first row at the top."""
        import moderngl

        vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        self._positions.write(vertices.tobytes())
        self._normals.write(vertex_normals(vertices, self._faces).tobytes())
        self._msaa.use()
        self._ctx.enable(moderngl.DEPTH_TEST)
        self._ctx.clear(*BACKGROUND, depth=1.0)
        self._vao.render(moderngl.TRIANGLES)
        self._ctx.copy_framebuffer(self._resolved, self._msaa)
        pixels = np.frombuffer(self._resolved.read(components=3), dtype=np.uint8)
        return pixels.reshape(self._size, self._size, 3)[::-1].copy()

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.release()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] unit normals: the sum of the adjacent faces' area-weighted normals."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, k], face_normals[:, axis], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


def camera_matrices(
    bounds: tuple[np.ndarray, np.ndarray], view: View, fov_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """(world->camera rotation [3, 3], model-view-projection [4, 4]) framing the bounds from the front."""
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    up, front = np.asarray(view.up, dtype=np.float64), np.asarray(view.front, dtype=np.float64)
    rotation = np.stack([np.cross(up, front), up, front])  # rows: camera right, up, towards the viewer
    center = (low + high) / 2
    half_right, half_up, half_depth = np.abs(rotation) @ (high - low) / 2
    half = np.tan(np.radians(fov_deg) / 2)
    # Fit the larger of width and height, with a 10% margin, on the plane nearest the camera.
    distance = max(half_right, half_up, 1e-6) * 1.1 / half + half_depth
    view_matrix = np.eye(4)
    view_matrix[:3, :3] = rotation
    view_matrix[:3, 3] = -rotation @ center - np.array([0.0, 0.0, distance])
    near, far = max(distance - 2 * half_depth, 1e-3), distance + 2 * half_depth + 1e-3
    projection = np.array(
        [
            [1 / half, 0, 0, 0],
            [0, 1 / half, 0, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )
    return rotation, projection @ view_matrix
