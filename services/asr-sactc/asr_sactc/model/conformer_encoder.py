"""Conformer encoder (ESPnet `ConformerEncoder`, conv2d input layer, rel-pos "latest", macaron, pre-LN)."""

import torch

from asr_sactc.model.conv2d_subsampling import Conv2dSubsampling
from asr_sactc.model.convolution_module import ConvolutionModule
from asr_sactc.model.encoder_layer import EncoderLayer
from asr_sactc.model.mask import make_pad_mask
from asr_sactc.model.positionwise_feed_forward import PositionwiseFeedForward
from asr_sactc.model.rel_position_attention import RelPositionMultiHeadedAttention
from asr_sactc.model.rel_positional_encoding import RelPositionalEncoding

ACTIVATIONS: dict[str, type[torch.nn.Module]] = {"swish": torch.nn.SiLU, "relu": torch.nn.ReLU}


class ConformerEncoder(torch.nn.Module):
    """Conv2d ×4 subsampling → `num_blocks` Conformer blocks → `after_norm`.

    The keyword arguments are ESPnet's `encoder_conf` keys. Options the SACTC recipe does not use
    (legacy rel-pos, other input layers, post-LN, concat_after) are rejected rather than half-supported.

    Args:
        input_size: feature size (80).
        output_size: model size d (256).
        attention_heads: heads (4).
        linear_units: FFN inner size (1024 in the recipe).
        num_blocks: Conformer blocks (12).
        dropout_rate: residual and FFN dropout.
        positional_dropout_rate: dropout on the scaled input and the position embeddings.
        attention_dropout_rate: dropout on attention weights.
        input_layer: only "conv2d".
        normalize_before: only True (pre-LN).
        macaron_style: add the first half-step FFN.
        rel_pos_type: only "latest".
        pos_enc_layer_type: only "rel_pos".
        selfattention_layer_type: only "rel_selfattn".
        activation_type: "swish" or "relu".
        use_cnn_module: add the convolution module.
        zero_triu: see `RelPositionMultiHeadedAttention`.
        cnn_module_kernel: depthwise kernel size (15).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: str = "conv2d",
        normalize_before: bool = True,
        macaron_style: bool = False,
        rel_pos_type: str = "latest",
        pos_enc_layer_type: str = "rel_pos",
        selfattention_layer_type: str = "rel_selfattn",
        activation_type: str = "swish",
        use_cnn_module: bool = True,
        zero_triu: bool = False,
        cnn_module_kernel: int = 31,
    ) -> None:
        super().__init__()
        unsupported = {
            "input_layer": (input_layer, "conv2d"),
            "normalize_before": (normalize_before, True),
            "rel_pos_type": (rel_pos_type, "latest"),
            "pos_enc_layer_type": (pos_enc_layer_type, "rel_pos"),
            "selfattention_layer_type": (selfattention_layer_type, "rel_selfattn"),
        }
        for name, (value, supported) in unsupported.items():
            if value != supported:
                raise ValueError(f"{name}={value!r} is not supported (only {supported!r})")
        if activation_type not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation_type {activation_type!r}; choose from {sorted(ACTIVATIONS)}"
            )
        self._output_size = output_size
        self.embed = Conv2dSubsampling(
            input_size, output_size, RelPositionalEncoding(output_size, positional_dropout_rate)
        )

        def block() -> EncoderLayer:
            def ffn() -> PositionwiseFeedForward:
                return PositionwiseFeedForward(
                    output_size, linear_units, dropout_rate, ACTIVATIONS[activation_type]()
                )

            return EncoderLayer(
                output_size,
                RelPositionMultiHeadedAttention(
                    attention_heads, output_size, attention_dropout_rate, zero_triu
                ),
                ffn(),
                ffn() if macaron_style else None,
                ConvolutionModule(output_size, cnn_module_kernel, ACTIVATIONS[activation_type]())
                if use_cnn_module
                else None,
                dropout_rate,
            )

        self.encoders = torch.nn.ModuleList(block() for _ in range(num_blocks))
        self.after_norm = torch.nn.LayerNorm(output_size, eps=1e-12)

    def output_size(self) -> int:
        """Model size d, so the CTC head and decoder can size themselves."""
        return self._output_size

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode.

        Args:
            xs_pad: [B, T, input_size] normalised log-Mel features at the 8 ms hop.
            ilens: [B] valid feature frames (at least 7 for the two stride-2 convs).

        Returns:
            [B, T', output_size] encoder states at a 32 ms frame rate, and [B] lengths T'.
        """
        if xs_pad.size(1) < 7:
            raise ValueError(f"{xs_pad.size(1)} frames is too short for conv2d subsampling (needs >= 7)")
        masks = ~make_pad_mask(ilens, xs_pad.size(1))[:, None, :]
        (xs, pos_emb), masks = self.embed(xs_pad, masks)
        for layer in self.encoders:
            xs, masks = layer(xs, pos_emb, masks)
        return self.after_norm(xs), masks[:, 0, :].sum(dim=1)
