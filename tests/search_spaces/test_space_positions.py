"""positions(): every layer of a sampled arch is a candidate of its position, at the shapes a forward sees."""
import torch


def layer_modules(net):
    """The per-layer Sequentials of a builder `Net`, in network order."""
    return [*net.stem, *(layer for stage in net.stages for layer in stage), *net.head]


def test_positions_cover_sampled_archs(spaces, space_name, encoder):
    space = spaces[space_name]
    positions = space.positions()
    assert len({p.key for p in positions}) == len(positions)
    for seed in range(30):
        arch = space.sample(seed)
        located = space.locate(arch)
        assert [layer for _, layer, _ in located] == arch.layers()
        seen = []
        net = encoder(arch).eval()
        hooks = [m.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape[1:])))
                 for m in layer_modules(net)]
        if seed < 6:  # a forward for a few archs; the shapes below are checked for all 30 on the located layers
            with torch.no_grad():
                net(torch.zeros(1, space.in_channels, space.input_size, space.input_size))
            assert seen == [(c, pos.input_size, pos.input_size) for pos, _, c in located], arch.to_string()
        for h in hooks:
            h.remove()
        for pos, layer, c_in in located:
            assert any(v.op == layer.op and v.hparams == layer.hparams for v in pos.candidates), (pos.key, layer)
            assert (c_in, layer.c_out) in pos.shapes, (pos.key, c_in, layer.c_out, pos.shapes)
            assert layer.stride == pos.stride and layer.downsample in pos.downsample
            plugin = layer.plugins[0] if layer.plugins else None
            assert any((p.is_none and plugin is None) or (plugin is not None and p.op == plugin.op
                       and p.hparams == plugin.hparams) for p in pos.plugins), (pos.key, plugin)


def test_positions_sizes_follow_the_strides(spaces, space_name):
    space = spaces[space_name]
    size = space.input_size
    for pos in space.positions():
        assert pos.input_size == size
        size = pos.output_size
