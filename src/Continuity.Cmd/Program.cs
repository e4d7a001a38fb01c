using Continuity.Cmd;

var env = CmdEnvironment.FromSystemConsole();

Console.CancelKeyPress += (_, e) =>
{
    // Inside a command (cluster tail), Ctrl-C means "stop this"; at the prompt it means "quit".
    e.Cancel = env.Interrupts.TryInterrupt();
};

return await CmdApp.RunAsync(args, env);
