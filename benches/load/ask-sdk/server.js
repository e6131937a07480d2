// The peer of the load benchmark (scripts/bench-load): the official ASK SDK for Node in its
// default deployment (one process, express, ask-sdk-express-adapter), answering the Help
// intent with voxgate's own Help sentence and reprompt (as examples/bare_axum.rs does; the
// bench passes them in BENCH_HELP and BENCH_REPROMPT, from `bare_axum --speech`). Signature
// and timestamp verification are off, so it is compared with voxgate with verification off.
// Usage: node server.js PORT (prints "listening on http://127.0.0.1:PORT").
'use strict';

const express = require('express');
const Alexa = require('ask-sdk-core');
const { ExpressAdapter } = require('ask-sdk-express-adapter');

const HELP = process.env.BENCH_HELP;
const REPROMPT = process.env.BENCH_REPROMPT;
if (!HELP || !REPROMPT) {
  console.error('set BENCH_HELP and BENCH_REPROMPT (scripts/bench-load does, from bare_axum --speech)');
  process.exit(2);
}

const HelpHandler = {
  canHandle(input) {
    const type = Alexa.getRequestType(input.requestEnvelope);
    return type === 'LaunchRequest'
      || (type === 'IntentRequest'
        && Alexa.getIntentName(input.requestEnvelope) === 'AMAZON.HelpIntent');
  },
  handle(input) {
    return input.responseBuilder.speak(HELP).reprompt(REPROMPT).getResponse();
  },
};

const ErrorHandler = {
  canHandle() {
    return true;
  },
  handle(input, error) {
    console.error(`error: ${error.message}`);
    return input.responseBuilder.speak('Sorry, something went wrong.').getResponse();
  },
};

const skill = Alexa.SkillBuilders.custom()
  .addRequestHandlers(HelpHandler)
  .addErrorHandlers(ErrorHandler)
  .create();

// verifySignature = false, verifyTimeStamp = false.
const adapter = new ExpressAdapter(skill, false, false);
const app = express();
app.post('/alexa', adapter.getRequestHandlers());

const port = Number(process.argv[2] || 0);
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
