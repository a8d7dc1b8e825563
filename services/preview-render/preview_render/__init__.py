"""preview-render: ARKit face motion (+ speech) to a preview mp4 of the open rig's painted face, as an Orate
model service (the rendering itself is shared.render's)."""
