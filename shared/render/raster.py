"""Offscreen CPU rasterisation of triangle meshes with moderngl on Mesa's llvmpipe (EGL, no display needed).

Why moderngl: it is maintained, ships manylinux wheels, and its EGL backend renders headless on the CPU with
the stock Debian Mesa packages (libegl1, libegl-mesa0, libgl1-mesa-dri); pyrender pins PyOpenGL 3.1.0 and
needs OSMesa. Shading: a warm key light above and to the left, a cool fill from the right, a rim light from
behind, a sky/ground ambient term and a Blinn-Phong highlight, so that folds and bulges (a cheek raised by a
smile, a brow pulled down) cast readable shading. A mesh is one skin colour unless a Surface paints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_DECALS = 16
_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat3 view_rotation;
in vec3 in_position;
in vec3 in_normal;
in vec3 in_rest;
in vec3 in_albedo;
in float in_material;
in float in_gloss;
in float in_decals;
out vec3 normal;
out vec3 rest;
out vec3 albedo;
flat out int material;
out float gloss;
out float decals;
void main() {
    gl_Position = mvp * vec4(in_position, 1.0);
    normal = view_rotation * in_normal;
    rest = in_rest;
    albedo = in_albedo;
    material = int(in_material + 0.5);
    gloss = in_gloss;
    decals = in_decals;
}
"""
_FRAGMENT_SHADER = """
#version 330
const int MAX_DECALS = $MAX_DECALS;
uniform int decal_count;
uniform vec4 decal_center[MAX_DECALS];  // xyz in rest coordinates, w: the material painted
uniform vec4 decal_radii[MAX_DECALS];   // xyz radii, w: width of the soft edge (a fraction of the radius)
uniform vec3 decal_color[MAX_DECALS];
in vec3 normal;
in vec3 rest;
in vec3 albedo;
flat in int material;
in float gloss;
in float decals;
out vec4 fragment;
// Light directions in camera space (x right, y up, z towards the viewer).
const vec3 KEY = normalize(vec3(-0.45, 0.55, 0.85));
const vec3 FILL = normalize(vec3(0.8, 0.05, 0.6));
const vec3 RIM = normalize(vec3(0.3, 0.6, -0.75));
const vec3 HALFWAY = normalize(KEY + vec3(0.0, 0.0, 1.0));
void main() {
    vec3 n = normalize(normal);
    // Two-sided: a triangle seen from behind (inside of the lips, eyelids) is lit like its front.
    if (!gl_FrontFacing) n = -n;
    vec3 base = albedo;
    // Only triangles touching a vertex near a decal look them up: on llvmpipe the loop over every pixel
    // cost more than the rest of the frame.
    for (int i = 0; decals > 0.0 && i < decal_count; ++i) {
        if (int(decal_center[i].w + 0.5) != material) continue;
        float d = length((rest - decal_center[i].xyz) / decal_radii[i].xyz);
        base = mix(base, decal_color[i], 1.0 - smoothstep(1.0 - decal_radii[i].w, 1.0, d));
    }
    vec3 light = vec3(0.20, 0.20, 0.23) + vec3(0.06) * n.y
        + vec3(0.95, 0.90, 0.82) * max(dot(n, KEY), 0.0)
        + vec3(0.28, 0.32, 0.40) * max(dot(n, FILL), 0.0)
        + vec3(0.30, 0.30, 0.32) * max(dot(n, RIM), 0.0);
    float highlight = gloss * pow(max(dot(n, HALFWAY), 0.0), 40.0);
    fragment = vec4(min(base * light + vec3(highlight), vec3(1.0)), 1.0);
}
""".replace("$MAX_DECALS", str(MAX_DECALS))
SKIN = (0.86, 0.70, 0.60)
SKIN_GLOSS = 0.08
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


@dataclass(frozen=True)
class Decal:
    """Paint inside an ellipsoid placed in rest coordinates, on one material only. The paint is attached to
    the surface (it is looked up at each point's rest position), so it moves as the mesh deforms."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    color: tuple[float, float, float]
    material: int
    soft_edge: float = 0.3  # fraction of the radius over which the paint fades out


@dataclass(frozen=True)
class Surface:
    """Per-vertex colour, gloss and material of one mesh, its rest positions and the decals painted on it."""

    albedo: np.ndarray  # [V, 3] float, 0..1
    gloss: np.ndarray  # [V] float, strength of the key light's highlight
    material: np.ndarray  # [V] int, what decals apply to
    rest: np.ndarray  # [V, 3] rest positions (the decals' coordinates)
    decals: tuple[Decal, ...] = field(default=())

    @classmethod
    def plain(cls, vertex_count: int) -> Surface:
        """Skin colour everywhere, nothing painted."""
        return cls(
            albedo=np.tile(np.asarray(SKIN, np.float32), (vertex_count, 1)),
            gloss=np.full(vertex_count, SKIN_GLOSS, np.float32),
            material=np.zeros(vertex_count, np.int32),
            rest=np.zeros((vertex_count, 3), np.float32),
        )


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
        surface: Surface | None = None,
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
        surface = surface or Surface.plain(self._vertex_count)
        if len(surface.decals) > MAX_DECALS:
            raise ValueError(f"at most {MAX_DECALS} decals, got {len(surface.decals)}")
        program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        rotation, mvp = camera_matrices(bounds, view, fov_deg)
        program["mvp"].write(mvp.T.astype("f4").tobytes())
        program["view_rotation"].write(rotation.T.astype("f4").tobytes())
        _write_decals(program, surface.decals)
        self._positions = ctx.buffer(reserve=self._vertex_count * 12)
        self._normals = ctx.buffer(reserve=self._vertex_count * 12)
        looks = np.hstack(
            [
                surface.rest.reshape(-1, 3),
                surface.albedo.reshape(-1, 3),
                surface.material.reshape(-1, 1),
                surface.gloss.reshape(-1, 1),
                near_decals(surface).reshape(-1, 1),
            ]
        ).astype("f4")
        if looks.shape[0] != self._vertex_count:
            raise ValueError(f"the surface has {looks.shape[0]} vertices, the mesh {self._vertex_count}")
        self._looks = ctx.buffer(np.ascontiguousarray(looks).tobytes())
        index = ctx.buffer(self._faces.tobytes())
        self._vao = ctx.vertex_array(
            program,
            [
                (self._positions, "3f", "in_position"),
                (self._normals, "3f", "in_normal"),
                (
                    self._looks,
                    "3f 3f 1f 1f 1f",
                    "in_rest",
                    "in_albedo",
                    "in_material",
                    "in_gloss",
                    "in_decals",
                ),
            ],
            index,
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


def near_decals(surface: Surface, margin: float = 1.5) -> np.ndarray:
    """[V] 1.0 where a vertex of a decal's material lies within margin times its ellipsoid, else 0.0."""
    near = np.zeros(len(surface.rest), np.float32)
    for decal in surface.decals:
        scaled = (surface.rest - np.asarray(decal.center)) / np.asarray(decal.radii)
        near[(np.linalg.norm(scaled, axis=1) < margin) & (surface.material == decal.material)] = 1.0
    return near


def _write_decals(program, decals: tuple[Decal, ...]) -> None:
    program["decal_count"].value = len(decals)
    if not decals:
        return  # the arrays are unused, and the GLSL compiler may have dropped them
    pad = MAX_DECALS - len(decals)
    centers = [(*d.center, d.material) for d in decals] + [(0.0,) * 4] * pad
    radii = [(*d.radii, d.soft_edge) for d in decals] + [(1.0,) * 4] * pad
    colors = [d.color for d in decals] + [(0.0,) * 3] * pad
    program["decal_center"].write(np.asarray(centers, "f4").tobytes())
    program["decal_radii"].write(np.asarray(radii, "f4").tobytes())
    program["decal_color"].write(np.asarray(colors, "f4").tobytes())


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
