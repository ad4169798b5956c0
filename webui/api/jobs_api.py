"""``/api/v1/jobs``: the asynchronous job API (submit, poll, fetch images, cancel).

The body of a submission is A1111's txt2img (or, at /jobs/img2img, img2img) body, converted exactly
as ``/sdapi/v1/txt2img`` converts it; the difference is that the call returns at once (202) with
the job id.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from webui.api.access import caller, may_see, owner_filter, shown_path, submit_refusal
from webui.api.common import error_response
from webui.api.images import encode_preview, png_bytes
from webui.api.img2img_request import build_img2img_request
from webui.api.models import (
    Img2ImgApiRequest,
    JobCancelled,
    JobProgress,
    JobSubmitted,
    JobView,
    Txt2ImgApiRequest,
)
from webui.api.txt2img_request import build_generation_request
from webui.app import Studio
from webui.auth.users import User
from webui.jobs import Job, JobState, QueueFull
from webui.limits import LimitExceeded
from webui.result import Result

# How long DELETE waits for a running job to stop before answering with its current state.
_CANCEL_WAIT_S = 5.0


def jobs_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["jobs"])
    queue = studio.queue

    def not_found(job_id: str):
        return error_response(404, "NotFound", f"no job with id {job_id!r} (unknown, or finished long ago and forgotten)")

    def view(job: Job, request: Request, user: User, with_preview: bool = True) -> JobView:
        p = job.progress
        result = job.result if isinstance(job.result, Result) else None
        images = [str(request.url_for("job_image", job_id=job.id, n=str(n))) for n in range(len(result.images))] if result else []
        saved = [g.path for g in result.images if g.path] if result else []
        return JobView(
            id=job.id,
            owner=job.owner,
            state=job.state.value,
            queue_position=queue.queue_position(job.id),
            progress=JobProgress(step=p.step, total=p.total, fraction=p.fraction, eta_seconds=p.eta_seconds, textinfo=p.textinfo),
            preview=encode_preview(p.preview) if with_preview and not job.finished else None,
            error=job.error,
            images=images,
            files=[shown_path(path, studio.paths.output_roots, user) for path in saved],
            info=dict(result.info) if result else None,
            interrupted=job.interrupted,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )

    @router.post("/jobs", status_code=202, response_model=JobSubmitted, responses={422: {}, 429: {}, 503: {}})
    def submit(req: Txt2ImgApiRequest, user: User = Depends(caller)):
        """Queue a txt2img job (A1111's txt2img body) for the caller; returns at once with its id."""
        return queued(build_generation_request(req, studio, user), user)

    @router.post("/jobs/img2img", status_code=202, response_model=JobSubmitted,
                 responses={422: {}, 429: {}, 503: {}})
    def submit_img2img(req: Img2ImgApiRequest, user: User = Depends(caller)):
        """Queue an img2img / inpaint / outpaint job (A1111's img2img body); returns at once with its id."""
        return queued(build_img2img_request(req, studio, user), user)

    def queued(request, user: User):
        try:
            job = studio.submit(request, owner=user.name)
        except (LimitExceeded, QueueFull, RuntimeError) as e:  # over a limit, queue full, or stopping
            return submit_refusal(e)
        return JobSubmitted(id=job.id, state=job.state.value, queue_position=queue.queue_position(job.id))

    @router.get("/jobs", response_model=list[JobView])
    def list_jobs(request: Request, user: User = Depends(caller)):
        """The caller's jobs (an admin's: everyone's): queued, running, recently finished; no previews."""
        return [view(job, request, user, with_preview=False) for job in queue.list(owner_filter(user))]

    def visible(job_id: str, user: User) -> Job | None:
        """The job when the caller may see it: another user's job is "not found", not "forbidden"."""
        job = queue.get(job_id)
        return job if may_see(user, job) else None

    @router.get("/jobs/{job_id}", response_model=JobView, responses={404: {}})
    def get_job(job_id: str, request: Request, user: User = Depends(caller)):
        job = visible(job_id, user)
        if job is None:
            return not_found(job_id)
        return view(job, request, user)

    @router.get(
        "/jobs/{job_id}/images/{n}", name="job_image", response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {}, 409: {}},
    )
    def job_image(job_id: str, n: int, user: User = Depends(caller)):
        """Result image ``n`` (0-based) as PNG, with its infotext inside."""
        job = visible(job_id, user)
        if job is None:
            return not_found(job_id)
        result = job.result if isinstance(job.result, Result) else None
        if result is None:
            return error_response(409, "NotReady", f"job {job_id} has no images (state: {job.state.value})")
        if not 0 <= n < len(result.images):
            return error_response(404, "NotFound", f"job {job_id} has {len(result.images)} image(s); no image {n}")
        data = png_bytes(result.images[n], bool(studio.options.enable_pnginfo))
        return Response(content=data, media_type="image/png")

    @router.delete("/jobs/{job_id}", response_model=JobCancelled, responses={404: {}, 409: {}})
    def cancel(job_id: str, user: User = Depends(caller)):
        """Cancel a queued job (it never runs) or stop a running one after its current step."""
        job = visible(job_id, user)
        if job is None:
            return not_found(job_id)
        if not queue.cancel(job_id):
            return error_response(409, "AlreadyFinished", f"job {job_id} already finished (state: {job.state.value})")
        if job.state is JobState.RUNNING:
            job.done_event.wait(_CANCEL_WAIT_S)
        return JobCancelled(id=job.id, state=job.state.value)

    return router
