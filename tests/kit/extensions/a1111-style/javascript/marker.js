// Proves that extension JavaScript runs in the page, with A1111's helpers available.
onUiLoaded(function () {
    var app = gradioApp();
    var prompt = app.querySelector('#txt2img_prompt textarea');
    document.body.setAttribute('data-a1111-style-js', prompt ? 'found-prompt' : 'no-prompt');
});
