"""Pydantic models of the REST API: A1111's request and response shapes, plus the jobs API.

Field names and defaults of :class:`Txt2ImgApiRequest` follow A1111's
``StableDiffusionTxt2ImgProcessingAPI`` (built there from the txt2img processing class plus a
few API-only fields), so an A1111 client's body parses unchanged. Fields we do not implement
yet are still accepted; the endpoint turns them into notes in ``info["notes"]``. Unknown fields
are accepted too (clients and extensions add their own) and reported the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from webui.request import PromptText, capped

# A1111's txt2img API: sampler_name defaults to None and sampler_index (a legacy, API-only
# field) to "Euler"; the endpoint uses ``sampler_name or sampler_index``, so a body without
# either runs Euler.
A1111_DEFAULT_SAMPLER = "Euler"
# Generous caps on texts, checked while the body is parsed (before any parsing of the texts); the
# options' limits (limit_prompt_chars) are lower and checked later.
Infotext = Annotated[str, capped(64_000)]


class Txt2ImgApiRequest(BaseModel):
    """Body of POST /sdapi/v1/txt2img (and POST /api/v1/jobs), with A1111's API defaults."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    prompt: PromptText | None = ""
    negative_prompt: PromptText | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    steps: int | None = 50
    cfg_scale: float | None = 7.0
    width: int | None = 512
    height: int | None = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: float | None = None
    denoising_strength: float | None = 0.75
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool | None = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    enable_hr: bool | None = False
    firstphase_width: int | None = 0
    firstphase_height: int | None = 0
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: PromptText | None = ""
    hr_negative_prompt: PromptText | None = ""
    force_task_id: str | None = None
    sampler_index: str | None = A1111_DEFAULT_SAMPLER
    script_name: str | None = None
    script_args: list[Any] | None = Field(default_factory=list)
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = Field(default_factory=dict)
    infotext: Infotext | None = None


class Img2ImgApiRequest(Txt2ImgApiRequest):
    """Body of POST /sdapi/v1/img2img: txt2img's fields plus A1111's img2img ones, with its API
    defaults (note ``inpaint_full_res`` is on and ``inpainting_fill`` is 0 = fill, as in A1111's API)."""

    init_images: list[str] | None = None
    resize_mode: int | None = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    mask_blur: int | None = None
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool | None = False
    # Ours: grow the canvas before inpainting the new area (A1111 does this with scripts).
    outpaint: dict[str, Any] | None = None


class ImageToImageResponse(BaseModel):
    images: list[str] = Field(default_factory=list, description="base64 PNGs (grid first when returned), infotext inside")
    parameters: dict[str, Any] = Field(description="the request as received (init_images and mask only when "
                                                   "include_init_images is true)")
    info: str = Field(description="JSON text: A1111's processed info, plus our 'notes'")


class TextToImageResponse(BaseModel):
    images: list[str] = Field(default_factory=list, description="base64 PNGs (grid first when returned), infotext inside")
    parameters: dict[str, Any] = Field(description="the request as received")
    info: str = Field(description="JSON text: A1111's processed info, plus our 'notes'")


class ProgressState(BaseModel):
    skipped: bool = False
    interrupted: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = "0"
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0


class ProgressResponse(BaseModel):
    progress: float = Field(description="0..1")
    eta_relative: float = Field(description="seconds left (estimate)")
    state: ProgressState
    current_image: str | None = Field(None, description="base64 PNG of the live preview")
    textinfo: str | None = None


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SDVaeItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    filename: str


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class MemoryResponse(BaseModel):
    ram: dict[str, Any] = Field(description="free / used (this process) / total, bytes")
    cuda: dict[str, Any] = Field(description="CUDA memory stats, or {'error': ...} without CUDA")


class PNGInfoRequest(BaseModel):
    image: str = Field(description="base64 image, or a data URL")


class PNGInfoResponse(BaseModel):
    info: str = Field(description="the infotext ('parameters'), '' when the image has none")
    items: dict[str, Any] = Field(description="the image's other metadata")
    parameters: dict[str, Any] = Field(description="the infotext parsed as A1111 parses it")


# --- /api/v1/jobs -------------------------------------------------------------------------------


class JobProgress(BaseModel):
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_seconds: float | None = None
    textinfo: str = ""


class JobSubmitted(BaseModel):
    id: str
    state: str
    queue_position: int | None = None


class JobView(BaseModel):
    id: str
    owner: str = Field(description="the user who submitted it (\"local\" with logins off)")
    state: str
    queue_position: int | None = None
    progress: JobProgress
    preview: str | None = Field(None, description="base64 PNG of the live preview")
    error: str | None = None
    images: list[str] = Field(default_factory=list, description="URL of each result image")
    files: list[str] = Field(default_factory=list, description="where the saved images are (for users: relative "
                                                               "to the data dir)")
    info: dict[str, Any] | None = None
    interrupted: bool = False
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class JobCancelled(BaseModel):
    id: str
    state: str


# --- styles and extra networks (A1111's shapes) ------------------------------------------------


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class EmbeddingItem(BaseModel):
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    shape: int = Field(description="vector width (SDXL: clip_l + clip_g widths)")
    vectors: int = Field(description="number of vectors (tokens) the embedding uses")


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem] = Field(description="embeddings usable with the active model")
    skipped: dict[str, EmbeddingItem] = Field(description="embeddings of another width (another model family)")


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any] = Field(default_factory=dict, description="the safetensors __metadata__")


class HypernetworkItem(BaseModel):
    name: str
    path: str
