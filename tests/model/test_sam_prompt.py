"""The export-friendly SAM path equals segment_anything's own modules."""

import torch


def test_prompt_embeddings_equal_sam_prompt_encoder(tiny_model):
    block = tiny_model.blocks[0].sam
    g = torch.Generator().manual_seed(0)
    points = torch.rand(3, 5, 2, generator=g)  # normalised (x, y)
    mask = torch.rand(3, 1, 32, 32, generator=g)
    size = tiny_model.config.image_size
    with torch.no_grad():
        # SAM takes pixel coordinates and shifts them by half a pixel itself
        sparse, dense = block.prompt_encoder(points=(points * size - 0.5, torch.ones(3, 5)), boxes=None, masks=mask)
        torch.testing.assert_close(block.sparse_embeddings(points), sparse)
        torch.testing.assert_close(block.dense_embeddings(mask), dense)


def test_refined_features_equal_two_way_transformer_keys(tiny_model):
    block = tiny_model.blocks[1].sam
    g = torch.Generator().manual_seed(1)
    image = torch.randn(2, 32, 8, 8, generator=g)
    points = torch.rand(2, 5, 2, generator=g)
    mask = torch.rand(2, 1, 32, 32, generator=g)
    with torch.no_grad():
        pe = block.prompt_encoder.get_dense_pe()
        # MaskDecoder.predict_masks' token layout: IoU token, mask tokens, then the prompt tokens
        out = torch.cat([block.iou_token.weight, block.mask_tokens.weight]).unsqueeze(0).expand(2, -1, -1)
        tokens = torch.cat([out, block.sparse_embeddings(points)], dim=1)
        assert torch.equal(block.tokens(points), tokens) and tokens.shape[1] == 1 + 4 + 5 + 1
        _, keys = block.transformer(image + block.dense_embeddings(mask), pe, tokens)
        expected = keys.reshape(2, 8, 8, 32)  # channels-last, as the block takes and returns it
        torch.testing.assert_close(block(image.permute(0, 2, 3, 1), points, mask), expected)
        # one image shared by both entries (two classes of one image): the same as that image repeated
        shared = block(image[:1].permute(0, 2, 3, 1), points, mask)
        repeated = block(image[:1].expand(2, -1, -1, -1).permute(0, 2, 3, 1), points, mask)
        torch.testing.assert_close(shared, repeated)
        torch.testing.assert_close(block.dense_tokens(mask), block.dense_embeddings(mask).permute(0, 2, 3, 1))
