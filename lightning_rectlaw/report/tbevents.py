"""Write a figure and a text to a TensorBoard event file with ``tensorboard``'s own protos and
writer: what the sweep summary logs, without importing torch (``rectlaw summarize`` stays light)."""

from __future__ import annotations

import time
from pathlib import Path


def write_image_and_text(log_dir: str | Path, tag: str, png: bytes, size: tuple[int, int], text: str) -> None:
    """One event file in ``log_dir``: the PNG ``png`` (``size`` = width, height) as image ``tag``
    and ``text`` (Markdown) as text ``<tag>_summary``, both at step 0."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.compat.proto.types_pb2 import DT_STRING
    from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    width, height = size
    picture = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    image = Summary.Value(tag=tag, image=picture)
    content = TextPluginData(version=0).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text", content=content))
    shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)])
    strings = TensorProto(dtype=DT_STRING, string_val=[text.encode("utf-8")], tensor_shape=shape)
    text_value = Summary.Value(tag=f"{tag}_summary", metadata=metadata, tensor=strings)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(log_dir))
    try:
        writer.add_event(Event(wall_time=time.time(), step=0, summary=Summary(value=[image, text_value])))
    finally:
        writer.close()
